/*
 * compat_api -- the reference SDK's API forms, compiled against spear_lab's spear.h with
 * -Wall -Werror (C; compat_api_cpp.cc is the C++ counterpart) and checked at run time.
 *
 * Compile time: the reference *_alloc helpers return uint8_t *, sp_log_write takes a
 * const void * buffer, SPEAR_EP_CTL_* are preprocessor macros.
 * Run time (stub transport and stub mic, no network): NULL buffers and a NULL format give
 * -SPEAR_EFAULT and log nothing; uint8_t buffers from the allocs go straight back into
 * the hostcalls.  One line per check, through printf (the host log):
 *
 *     check <name> ok|FAIL
 *     compat_api checks=<n> failures=<m>
 *
 * Exit status: 0 when every check passed, 1 otherwise.
 */
#include "spear.h"

#if !defined(SPEAR_EP_CTL_ADD) || !defined(SPEAR_EP_CTL_MOD) || !defined(SPEAR_EP_CTL_DEL)
#error "SPEAR_EP_CTL_ADD/MOD/DEL must be macros"
#endif
#if SPEAR_EP_CTL_ADD != 1 || SPEAR_EP_CTL_MOD != 2 || SPEAR_EP_CTL_DEL != 3
#error "SPEAR_EP_CTL_* must be 1, 2, 3"
#endif

#define IS_BYTES(expr) _Generic((expr), uint8_t *: 1, default: 0)
_Static_assert(IS_BYTES(sp_rtasr_read_alloc(0, NULL)), "sp_rtasr_read_alloc returns uint8_t *");
_Static_assert(IS_BYTES(sp_mic_read_alloc(0, NULL)), "sp_mic_read_alloc returns uint8_t *");
_Static_assert(IS_BYTES(sp_mic_get_status_alloc(0, NULL)), "sp_mic_get_status_alloc returns uint8_t *");
_Static_assert(IS_BYTES(sp_cchat_recv_alloc(0, NULL)), "sp_cchat_recv_alloc returns uint8_t *");
_Static_assert(IS_BYTES(sp_user_stream_read_alloc(0, NULL)), "sp_user_stream_read_alloc returns uint8_t *");
_Static_assert(_Generic(&sp_log_write, int32_t (*)(int32_t, const void *, size_t): 1, default: 0),
               "sp_log_write(int32_t, const void *, size_t)");

static int checks, failures;

static void check(const char *name, int ok) {
    checks++;
    if (!ok) failures++;
    printf("check %s %s\n", name, ok ? "ok" : "FAIL");
}

/* Wait up to `ms` for `bits` on `fd` (a private epoll, reference calls only). */
static int wait_for(int32_t fd, uint32_t bits, int32_t ms) {
    int32_t ep = sp_ep_create();
    sp_ep_ctl(ep, SPEAR_EP_CTL_ADD, fd, (int32_t)bits);
    sp_epoll_event_t rec[4];
    uint32_t cell = sizeof rec;
    int32_t n = sp_ep_wait(ep, SP_PTR(rec), SP_PTR(&cell), ms);
    int found = n > 0 && rec[0].fd == fd && (rec[0].events & bits) != 0;
    check("ep_ctl_del_macro", sp_ep_ctl(ep, SPEAR_EP_CTL_DEL, fd, 0) == 0);
    sp_ep_close(ep);
    return found;
}

int main(void) {
    /* logging */
    static const uint8_t bytes[] = {'b', 'y', 't', 'e', 's'};
    check("log_write_uint8", sp_log_write(SP_LOG_INFO, bytes, sizeof bytes) == 0);
    check("log_write_null", sp_log_write(SP_LOG_INFO, NULL, 3) == -SPEAR_EFAULT);
    check("log_write_null_empty", sp_log_write(SP_LOG_INFO, NULL, 0) == 0);
    check("logf_null", sp_logf(SP_LOG_INFO, NULL) == -SPEAR_EFAULT);
    check("infof_null", sp_infof(NULL) == -SPEAR_EFAULT);
    check("log_str_null", sp_log_str(SP_LOG_INFO, NULL) == -SPEAR_EFAULT);
    check("logf_count", sp_logf(SP_LOG_DEBUG, "%d-%s", 42, "x") == 4);

    /* mic: uint8_t frames and status */
    int32_t mic = sp_mic_create();
    static const char MIC[] = "{\"source\":\"stub\",\"frame_ms\":20}";
    check("mic_set_param", sp_mic_set_param_json(mic, MIC, sizeof MIC - 1) == 0);
    check("mic_in", wait_for(mic, SPEAR_EPOLLIN, 2000));
    uint32_t frame_len = 0;
    uint8_t *frame = sp_mic_read_alloc(mic, &frame_len);
    check("mic_read_alloc", frame != NULL && frame_len == 960);
    uint32_t st_len = 0;
    uint8_t *st = sp_mic_get_status_alloc(mic, &st_len);
    check("mic_status_alloc", st != NULL && strstr((const char *)st, "\"running\":true") != NULL);
    free(st);

    /* rtasr: the frame goes back into the host as it is; the event comes out as bytes */
    int32_t asr = sp_rtasr_create();
    check("rtasr_params", sp_rtasr_set_param_string(asr, "transport", "stub") == 0 &&
                              sp_rtasr_set_param_u32(asr, "stub_event_interval_ms", 10) == 0);
    check("rtasr_connect", sp_rtasr_connect(asr) == 0);
    check("rtasr_write_uint8",
          frame != NULL && sp_rtasr_write(asr, SP_PTR(frame), (int32_t)frame_len) == (int32_t)frame_len);
    free(frame);
    check("rtasr_in", wait_for(asr, SPEAR_EPOLLIN, 2000));
    uint32_t ev_len = 0;
    uint8_t *ev = sp_rtasr_read_alloc(asr, &ev_len);
    check("rtasr_read_alloc", ev != NULL && ev_len > 0 && ev[ev_len] == '\0' &&
                                  sp_json_type_is((const char *)ev, "transcription.delta"));
    free(ev);

    sp_rtasr_close(asr);
    sp_mic_close(mic);
    printf("compat_api checks=%d failures=%d\n", checks, failures);
    return failures ? 1 : 0;
}
