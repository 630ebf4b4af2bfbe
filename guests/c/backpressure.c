/*
 * backpressure -- what a full send queue looks like from inside a guest.
 *
 * An rtasr fd with a small `max_send_queue_bytes` and the stub transport (which takes ONE
 * queued item off the send queue every 10 ms, whatever its size) is fed 960-byte frames
 * as fast as possible.  A write that does not fit returns -EAGAIN and queues nothing;
 * the guest then adds EPOLLOUT to its interest mask, waits until the fd is writable again
 * and removes EPOLLOUT (epoll is level-triggered: a writable fd left in the OUT interest
 * would make every wait return at once).  The write rate settles at the stub's drain rate,
 * about 100 frames per second.
 *
 * stdout:
 *   config frames=<n> frame_bytes=<n> queue_bytes=<n> transport=<t>
 *   progress: written=<n> eagain=<n> outwaits=<n> elapsed_ms=<n> send_queue_bytes=<n>
 *       (every --report-every frames)
 *   error: <what> rc=<n>                                         (then exit status 1)
 *   summary: written=<n> eagain=<n> outwaits=<n> bytes=<n> events=<n> elapsed_ms=<n>
 *
 * Flags / environment (flags win):
 *   --frames N        SPEAR_FRAMES        frames to write (default 200)
 *   --queue-bytes N   SPEAR_QUEUE_BYTES   max_send_queue_bytes (default 3840 = 4 frames)
 *   --frame-bytes N   SPEAR_FRAME_BYTES   frame size (default 960 = 20 ms at 24 kHz mono)
 *   --report-every N  SPEAR_REPORT_EVERY  progress line period in frames (default 50)
 *   --transport T     SPEAR_TRANSPORT     default "stub"
 *
 * With a queue that is not a multiple of the frame size, EPOLLOUT ("below the limit") can
 * come back while a whole frame still does not fit; the guest then backs off 10 ms.
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

static long n_frames = 200, queue_bytes = 3840, frame_bytes = 960, report_every = 50;
static const char *transport = "stub";

static int32_t ep, asr;
static long long written, eagain, outwaits, events;
static int64_t t0;

static int parse_long(const char *s, long *out) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || v < 0) return -1;
    *out = v;
    return 0;
}

static int configure(int argc, char **argv) {
    static const char *const flags[] = {"--frames", "--queue-bytes", "--frame-bytes",
                                        "--report-every", "--transport"};
    static const char *const envs[] = {"SPEAR_FRAMES", "SPEAR_QUEUE_BYTES", "SPEAR_FRAME_BYTES",
                                       "SPEAR_REPORT_EVERY", "SPEAR_TRANSPORT"};
    long *dst[] = {&n_frames, &queue_bytes, &frame_bytes, &report_every};
    for (int k = 0; k < 5; k++) {
        const char *v = getenv(envs[k]);
        if (v == NULL || v[0] == '\0') continue;
        if (k == 4) transport = v;
        else if (parse_long(v, dst[k]) != 0) {
            printf("error: bad %s rc=-22\n", envs[k]);
            return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        int k;
        for (k = 0; k < 5; k++)
            if (strcmp(argv[i], flags[k]) == 0) break;
        if (k == 5 || i + 1 >= argc) {
            printf("error: unknown or incomplete argument %s rc=-22\n", argv[i]);
            return -1;
        }
        const char *v = argv[++i];
        if (k == 4) transport = v;
        else if (parse_long(v, dst[k]) != 0) {
            printf("error: bad %s rc=-22\n", flags[k]);
            return -1;
        }
    }
    if (frame_bytes <= 0 || frame_bytes > 1 << 20) {
        printf("error: frame_bytes out of range rc=-22\n");
        return -1;
    }
    if (report_every <= 0) report_every = 50;
    return 0;
}

static int fail(const char *what, int32_t rc) {
    printf("error: %s rc=%d\n", what, (int)rc);
    uint32_t len = 0;
    char *st = sp_rtasr_get_status_alloc(asr, &len);
    printf("status rtasr: %s\n", st ? st : "null");
    free(st);
    fflush(stdout);
    return 1;
}

static int64_t send_queue_bytes(void) {
    uint32_t len = 0;
    int64_t v = -1;
    char *st = sp_rtasr_get_status_alloc(asr, &len);
    if (st) {
        sp_json_get_int(st, "send_queue_bytes", &v);
        free(st);
    }
    return v;
}

/* Read and discard stub events (they are not the point here). */
static int32_t drain_events(void) {
    static char buf[4096];
    for (;;) {
        uint32_t cell = sizeof buf;
        int32_t rc = sp_rtasr_read(asr, SP_PTR(buf), SP_PTR(&cell));
        if (rc == -SPEAR_EAGAIN) return 0;
        if (rc == -SPEAR_ENOSPC) { /* too big for us: drop it via a bigger temporary */
            uint8_t *tmp = sp_rtasr_read_alloc(asr, NULL);
            free(tmp);
        } else if (rc < 0) {
            return rc;
        }
        events++;
    }
}

/* Wait until the fd is writable (EPOLLOUT only in the mask while waiting).  With
 * `backoff`, first sleep 10 ms in a wait without OUT in the mask. */
static int32_t wait_writable(int backoff) {
    const int32_t base = SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP;
    sp_epoll_event_t evs[4];
    if (backoff) {
        int32_t n = sp_ep_wait_events(ep, evs, 4, 10);
        if (n < 0) return n;
        if (n > 0 && (evs[0].events & SPEAR_EPOLLIN)) {
            int32_t rc = drain_events();
            if (rc < 0) return rc;
        }
    }
    int32_t rc = sp_ep_ctl(ep, SPEAR_EPOLL_CTL_MOD, asr, base | SPEAR_EPOLLOUT);
    if (rc < 0) return rc;
    outwaits++;
    for (;;) {
        int32_t n = sp_ep_wait_events(ep, evs, 4, 1000);
        if (n < 0) return n;
        uint32_t e = n > 0 ? evs[0].events : 0;
        if (e & SPEAR_EPOLLIN) {
            rc = drain_events();
            if (rc < 0) return rc;
        }
        if (e & (SPEAR_EPOLLERR | SPEAR_EPOLLHUP)) return -SPEAR_EIO;
        if (e & SPEAR_EPOLLOUT) break;
    }
    return sp_ep_ctl(ep, SPEAR_EPOLL_CTL_MOD, asr, base);
}

int main(int argc, char **argv) {
    if (configure(argc, argv) != 0) return 2;
    printf("config frames=%ld frame_bytes=%ld queue_bytes=%ld transport=%s\n", n_frames,
           frame_bytes, queue_bytes, transport);
    fflush(stdout);

    ep = sp_ep_create();
    asr = sp_rtasr_create();
    int32_t rc;
    if ((rc = sp_rtasr_set_param_string_escaped(asr, "transport", transport)) < 0)
        return fail("set transport", rc);
    if ((rc = sp_rtasr_set_param_u32(asr, "max_send_queue_bytes", (uint32_t)queue_bytes)) < 0)
        return fail("set max_send_queue_bytes", rc);
    if ((rc = sp_rtasr_set_param_u32(asr, "stub_event_interval_ms", 1000)) < 0)
        return fail("set stub_event_interval_ms", rc);
    if ((rc = sp_rtasr_connect(asr)) < 0) return fail("connect", rc);
    if ((rc = sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, asr,
                        SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP)) < 0)
        return fail("epoll_ctl(ADD)", rc);

    char *frame = (char *)malloc((size_t)frame_bytes);
    if (frame == NULL) return fail("out of memory", -SPEAR_ENOMEM);
    for (long i = 0; i < frame_bytes; i++) frame[i] = (char)(i & 0xff);

    t0 = sp_time_now_ms();
    int after_out = 0;
    while (written < n_frames) {
        rc = sp_rtasr_write(asr, SP_PTR(frame), (int32_t)frame_bytes);
        if (rc == -SPEAR_EAGAIN) {
            eagain++;
            /* EPOLLOUT came back but the frame still does not fit: back off */
            rc = wait_writable(after_out);
            if (rc < 0) return fail("wait for EPOLLOUT", rc);
            after_out = 1;
            continue;
        }
        if (rc < 0) return fail("rtasr_write", rc);
        after_out = 0;
        written++;
        if (written % report_every == 0) {
            printf("progress: written=%lld eagain=%lld outwaits=%lld elapsed_ms=%lld "
                   "send_queue_bytes=%lld\n",
                   written, eagain, outwaits, (long long)(sp_time_now_ms() - t0),
                   (long long)send_queue_bytes());
            fflush(stdout);
        }
        /* pick up events between writes too, without blocking */
        rc = drain_events();
        if (rc < 0) return fail("rtasr_read", rc);
    }
    int64_t elapsed = sp_time_now_ms() - t0;
    free(frame);
    sp_rtasr_close(asr);
    sp_ep_close(ep);
    printf("summary: written=%lld eagain=%lld outwaits=%lld bytes=%lld events=%lld elapsed_ms=%lld\n",
           written, eagain, outwaits, written * (long long)frame_bytes, events, (long long)elapsed);
    fflush(stdout);
    return 0;
}
