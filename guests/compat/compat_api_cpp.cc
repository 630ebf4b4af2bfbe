// compat_api_cpp -- the reference SDK's API forms in C++: spear.h included from a C++
// translation unit, built with clang++ -Wall -Werror and no C++ standard library
// (-nostdlib++ -nostdinc++: only wasi-libc's C headers, which Debian's wasi-libc has).
//
// In C++ a char * where the reference returns uint8_t * is a hard error, so the
// declarations below only compile against the reference forms.  At run time the guest
// reads a stub mic frame and a stub transcription event through those helpers and logs
// one line per check through printf (the host log):
//
//     check <name> ok|FAIL
//     compat_api_cpp checks=<n> failures=<m>
//
// Exit status: 0 when every check passed, 1 otherwise.
#include "spear.h"

namespace {

template <class A, class B> struct same { static constexpr bool value = false; };
template <class A> struct same<A, A> { static constexpr bool value = true; };

static_assert(same<decltype(sp_rtasr_read_alloc(0, nullptr)), uint8_t *>::value,
              "sp_rtasr_read_alloc returns uint8_t *");
static_assert(same<decltype(sp_mic_read_alloc(0, nullptr)), uint8_t *>::value,
              "sp_mic_read_alloc returns uint8_t *");
static_assert(same<decltype(sp_mic_get_status_alloc(0, nullptr)), uint8_t *>::value,
              "sp_mic_get_status_alloc returns uint8_t *");
static_assert(same<decltype(sp_cchat_recv_alloc(0, nullptr)), uint8_t *>::value,
              "sp_cchat_recv_alloc returns uint8_t *");
static_assert(same<decltype(&sp_log_write), int32_t (*)(int32_t, const void *, size_t)>::value,
              "sp_log_write(int32_t, const void *, size_t)");
static_assert(SPEAR_EP_CTL_ADD == 1 && SPEAR_EP_CTL_MOD == 2 && SPEAR_EP_CTL_DEL == 3,
              "SPEAR_EP_CTL_* values");
#ifndef SPEAR_EP_CTL_MOD
#error "SPEAR_EP_CTL_MOD must be a macro"
#endif

// A malloc'd buffer from a *_alloc helper, freed at scope end.
class Owned {
public:
    explicit Owned(uint8_t *p, uint32_t n) : p_(p), n_(n) {}
    ~Owned() { free(p_); }
    Owned(Owned &&other) : p_(other.p_), n_(other.n_) { other.p_ = nullptr; }
    Owned(const Owned &) = delete;
    Owned &operator=(const Owned &) = delete;
    const uint8_t *data() const { return p_; }
    uint32_t size() const { return n_; }
    const char *text() const { return reinterpret_cast<const char *>(p_); }
    explicit operator bool() const { return p_ != nullptr; }

private:
    uint8_t *p_;
    uint32_t n_;
};

// An fd closed at scope end (any close closes any kind).
class Fd {
public:
    explicit Fd(int32_t fd) : fd_(fd) {}
    ~Fd() { sp_rtasr_close(fd_); }
    Fd(const Fd &) = delete;
    Fd &operator=(const Fd &) = delete;
    int32_t get() const { return fd_; }

private:
    int32_t fd_;
};

int checks = 0, failures = 0;

void check(const char *name, bool ok) {
    ++checks;
    if (!ok) ++failures;
    printf("check %s %s\n", name, ok ? "ok" : "FAIL");
}

bool ready(int32_t fd, uint32_t bits) {
    Fd ep(sp_ep_create());
    sp_ep_ctl(ep.get(), SPEAR_EP_CTL_ADD, fd, static_cast<int32_t>(bits));
    sp_epoll_event_t rec[2];
    uint32_t cell = sizeof rec;
    int32_t n = sp_ep_wait(ep.get(), SP_PTR(rec), SP_PTR(&cell), 2000);
    sp_ep_ctl(ep.get(), SPEAR_EP_CTL_MOD, fd, 0);
    return n > 0 && rec[0].fd == fd && (rec[0].events & bits) != 0;
}

template <uint32_t N> Owned alloc_frame(int32_t mic) {
    uint32_t len = 0;
    uint8_t *frame = sp_mic_read_alloc(mic, &len);  // the reference form, unchanged
    return Owned(frame, len == N ? len : 0);
}

}  // namespace

int main() {
    const uint8_t hello[] = {'c', '+', '+'};
    check("log_write_uint8", sp_log_write(SP_LOG_INFO, hello, sizeof hello) == 0);
    check("log_write_null", sp_log_write(SP_LOG_WARN, nullptr, 1) == -SPEAR_EFAULT);
    check("logf_null", sp_logf(SP_LOG_INFO, nullptr) == -SPEAR_EFAULT);

    Fd mic(sp_mic_create());
    static const char config[] = "{\"source\":\"stub\"}";
    check("mic_set_param", sp_mic_set_param_json(mic.get(), config, sizeof config - 1) == 0);
    check("mic_in", ready(mic.get(), SPEAR_EPOLLIN));
    Owned frame = alloc_frame<960>(mic.get());
    check("mic_read_alloc", frame && frame.size() == 960);
    uint32_t st_len = 0;
    Owned status(sp_mic_get_status_alloc(mic.get(), &st_len), st_len);
    check("mic_status_alloc", status && strstr(status.text(), "\"source\":\"stub\"") != nullptr);

    Fd asr(sp_rtasr_create());
    check("rtasr_connect", sp_rtasr_set_param_string(asr.get(), "transport", "stub") == 0 &&
                               sp_rtasr_set_param_u32(asr.get(), "stub_event_interval_ms", 10) == 0 &&
                               sp_rtasr_connect(asr.get()) == 0);
    check("rtasr_write_uint8", sp_rtasr_write(asr.get(), SP_PTR(frame.data()),
                                              static_cast<int32_t>(frame.size())) == 960);
    check("rtasr_in", ready(asr.get(), SPEAR_EPOLLIN));
    uint32_t ev_len = 0;
    Owned event(sp_rtasr_read_alloc(asr.get(), &ev_len), ev_len);
    check("rtasr_read_alloc", event && sp_json_type_is(event.text(), "transcription.delta"));

    printf("compat_api_cpp checks=%d failures=%d\n", checks, failures);
    return failures ? 1 : 0;
}
