/*
 * epoll_tour -- the epoll rules of the spear ABI, one hostcall at a time.
 *
 * Every step makes one hostcall and prints its return value, the value the ABI
 * prescribes (when it prescribes one) and the reason:
 *
 *   step <name>: rc=<int>[ expect=<int>][ <key>=<value> ...]
 *   why <name>: <the rule that gives this result>
 *
 * When a result differs from what the ABI prescribes, one more line follows:
 *
 *   mismatch <name>: <what was expected>
 *
 * and the run ends with
 *
 *   summary: steps=<n> mismatches=<n>
 *
 * (exit status 0 when there is no mismatch, 1 otherwise).  Numbers in details are
 * decimal, except `events=0x..` (hex readiness bits: IN 0x1, OUT 0x4, ERR 0x8, HUP 0x10).
 *
 * Needs no network: the rtasr fd uses the stub transport, which emits a fake event every
 * `stub_event_interval_ms` (20 here) and takes one queued item off the send queue every
 * 10 ms.
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

#include <limits.h>

#define ANY INT_MIN

static int steps, mismatches;

/* Print one step and why it gives that result; compare with the expected value unless
 * `expect` is ANY. */
static SP__PRINTF(5, 6) void step(const char *name, int32_t rc, int32_t expect,
                                  const char *why, const char *detail_fmt, ...) {
    steps++;
    printf("step %s: rc=%d", name, (int)rc);
    if (expect != ANY) printf(" expect=%d", (int)expect);
    if (detail_fmt != NULL && detail_fmt[0] != '\0') {
        va_list ap;
        va_start(ap, detail_fmt);
        putchar(' ');
        vprintf(detail_fmt, ap);
        va_end(ap);
    }
    putchar('\n');
    if (why != NULL && why[0] != '\0') printf("why %s: %s\n", name, why);
    if (expect != ANY && rc != expect) {
        mismatches++;
        printf("mismatch %s: expected rc=%d\n", name, (int)expect);
    }
    fflush(stdout);
}

/* An extra expectation on a step's details. */
static void check(const char *name, int ok, const char *what) {
    if (!ok) {
        mismatches++;
        printf("mismatch %s: %s\n", name, what);
        fflush(stdout);
    }
}

static sp_epoll_event_t recs[8];
static uint32_t cell;
static char buf[65536];

static int32_t wait_records(int32_t ep, uint32_t capacity, int32_t timeout_ms) {
    memset(recs, 0, sizeof recs);
    cell = capacity;
    return sp_epoll_wait(ep, SP_PTR(recs), SP_PTR(&cell), timeout_ms);
}

int main(void) {
    int32_t rc;

    /* --- creating fds -------------------------------------------------------------- */
    int32_t ep = sp_epoll_create();
    step("epoll_create", ep, ANY, "a fresh table numbers its first fd 1000 (R7)", "fd=%d", (int)ep);
    check("epoll_create", ep >= 1000, "fds start at 1000");
    int32_t asr = sp_rtasr_create();
    step("rtasr_create", asr, ep + 1, "the next number, whatever the kind (R7)", "fd=%d", (int)asr);

    /* --- epoll_ctl argument rules ----------------------------------------------------- */
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, ep, SPEAR_EPOLLIN);
    step("ctl_self", rc, -SPEAR_EINVAL, "an epoll cannot watch itself; checked before anything else (R20)", NULL);
    rc = sp_epoll_ctl(ep, 4, asr, SPEAR_EPOLLIN);
    step("ctl_bad_op", rc, -SPEAR_EINVAL, "op must be ADD 1, MOD 2 or DEL 3 (R20)", "op=4");
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, 999, SPEAR_EPOLLIN);
    step("ctl_unknown_fd", rc, -SPEAR_EBADF, "fd 999 was never created (R20)", "fd=999");
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, asr,
                      SPEAR_EPOLLIN | SPEAR_EPOLLOUT | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);
    step("ctl_add", rc, 0, "watch IN|OUT|ERR|HUP, the usual full interest", "fd=%d events=0x1d", (int)asr);

    /* --- a fresh rtasr fd is writable ----------------------------------------------------- */
    rc = wait_records(ep, sizeof recs, 0);
    step("wait0_out", rc, 1, "a fresh rtasr fd has room in its send queue: EPOLLOUT, one 8-byte record (R23)", "fd=%d events=0x%x cell=%u", (int)recs[0].fd,
         (unsigned)recs[0].events, (unsigned)cell);
    check("wait0_out", recs[0].fd == asr && recs[0].events == SPEAR_EPOLLOUT && cell == 8,
          "one record {rtasr fd, EPOLLOUT}, cell 8");

    /* --- backpressure: a 16-byte send queue --------------------------------------------- */
    rc = sp_rtasr_set_param_u32(asr, "max_send_queue_bytes", 16);
    step("set_max_send_queue_bytes", rc, 0, "a 16-byte send queue, so it fills at once", "value=16");
    memset(buf, 0x11, 16);
    rc = sp_rtasr_write(asr, SP_PTR(buf), 16);
    step("write16", rc, 16, "16 bytes fit exactly", "queued=16 limit=16");
    rc = wait_records(ep, sizeof recs, 0);
    step("wait0_full", rc, 0, "OUT means strictly below the limit: a full queue is not writable (R31)", "cell=%u", (unsigned)cell);
    rc = sp_rtasr_write(asr, SP_PTR(buf), 1);
    step("write1", rc, -SPEAR_EAGAIN, "writes are all-or-nothing: no room, -EAGAIN, nothing queued (R31)", NULL);

    /* --- nothing to read yet --------------------------------------------------------------- */
    cell = sizeof buf;
    rc = sp_rtasr_read(asr, SP_PTR(buf), SP_PTR(&cell));
    step("read_empty", rc, -SPEAR_EAGAIN, "nothing received yet: a read never blocks (R32)", NULL);

    /* --- generic fd control ------------------------------------------------------------------ */
    cell = 256;
    rc = sp_fd_ctl(asr, SPEAR_FD_CTL_GET_KIND, SP_PTR(buf), SP_PTR(&cell));
    if (rc >= 0) buf[rc] = '\0';
    step("fd_ctl_get_kind", rc, 16, "fd_ctl describes any fd: {\"kind\":\"RtAsr\"} is 16 bytes (R29)", "json=%s", rc >= 0 ? buf : "-");
    uint32_t slen = 0;
    char *status = sp_rtasr_get_status_alloc(asr, &slen);
    char state[32] = "-";
    if (status) sp_json_get_string(status, "state", state, sizeof state);
    step("get_status", (int32_t)slen, ANY, "rc is the status length; SET_PARAM moved the state to Configured (R32)", "state=%s", state);
    check("get_status", strcmp(state, "Configured") == 0, "state Configured after SET_PARAM");
    free(status);

    /* --- connect the stub transport: it drains the queue and emits events ------------- */
    rc = sp_rtasr_set_param_string(asr, "transport", "stub");
    step("set_transport_stub", rc, 0, "the built-in stub transport: no network", NULL);
    rc = sp_rtasr_set_param_u32(asr, "stub_event_interval_ms", 20);
    step("set_stub_event_interval_ms", rc, 0, "one fake event every 20 ms", "value=20");
    rc = sp_rtasr_connect(asr);
    step("connect", rc, 0, "the stub starts: it drains the send queue and emits events", NULL);

    /* watch for input only from now on */
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_MOD, asr, SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);
    step("ctl_mod_in", rc, 0, "MOD replaces the mask: IN|ERR|HUP, no more OUT", "events=0x19");
    rc = wait_records(ep, sizeof recs, 2000);
    step("wait_in", rc, 1, "the first stub event arrived: EPOLLIN wakes the blocked wait (R16)", "fd=%d events=0x%x", (int)recs[0].fd, (unsigned)recs[0].events);
    check("wait_in", recs[0].fd == asr && recs[0].events == SPEAR_EPOLLIN, "EPOLLIN on the rtasr fd");

    /* --- level-triggered: unread input is reported again and again ------------------------- */
    rc = wait_records(ep, sizeof recs, 0);
    step("level_wait1", rc, 1, "level-triggered: the event is still unread, so IN is reported again", "fd=%d events=0x%x", (int)recs[0].fd, (unsigned)recs[0].events);
    rc = wait_records(ep, sizeof recs, 0);
    step("level_wait2", rc, 1, "and again: nothing is consumed by a wait (manual 3.2)", "fd=%d events=0x%x", (int)recs[0].fd, (unsigned)recs[0].events);
    check("level_wait2", recs[0].fd == asr && recs[0].events == SPEAR_EPOLLIN,
          "the same record as level_wait1");

    /* --- a too-small read buffer: -ENOSPC, needed length in the cell, nothing lost -------- */
    cell = 1;
    rc = sp_rtasr_read(asr, SP_PTR(buf), SP_PTR(&cell));
    uint32_t need = cell;
    step("read_small", rc, -SPEAR_ENOSPC, "a 1-byte buffer: -ENOSPC, the needed length written into the cell (R48)", "cap=1 need=%u", (unsigned)need);
    check("read_small", need > 1, "the needed length written back into the cell");
    cell = need;
    rc = sp_rtasr_read(asr, SP_PTR(buf), SP_PTR(&cell));
    int64_t seq = -1;
    char type[64] = "-";
    if (rc >= 0) {
        buf[rc] = '\0';
        sp_json_get_int(buf, "seq", &seq);
        sp_json_get_string(buf, "type", type, sizeof type);
    }
    step("read_retry", rc, (int32_t)need, "a buffer of that length gets the very same event, seq 1 (R48)", "len=%d seq=%lld type=%s", (int)rc, (long long)seq, type);
    check("read_retry", seq == 1, "the retry returns the same (first) event, seq 1");

    /* --- drain until -EAGAIN ---------------------------------------------------------------- */
    for (;;) {
        cell = sizeof buf;
        rc = sp_rtasr_read(asr, SP_PTR(buf), SP_PTR(&cell));
        if (rc < 0) break;
    }
    step("drain", rc, -SPEAR_EAGAIN, "read until -EAGAIN: the queue is empty now", NULL);

    /* --- wait's own buffer rules ------------------------------------------------------------ */
    rc = wait_records(ep, 4, 0);
    step("wait_small_cap", rc, -SPEAR_ENOSPC, "room for less than one record: -ENOSPC and 8 in the cell (R18)", "cap=4 cell=%u", (unsigned)cell);
    check("wait_small_cap", cell == 8, "8 (one record) written back into the cell");
    memset(recs, 0, sizeof recs);
    cell = 4;
    rc = sp_epoll_wait(999, SP_PTR(recs), SP_PTR(&cell), 0);
    step("wait_small_cap_bad_epfd", rc, -SPEAR_ENOSPC, "the cell is checked before the epfd (manual 10)", "epfd=999 cap=4");
    rc = wait_records(asr, sizeof recs, 0);
    step("wait_not_epoll", rc, -SPEAR_EBADF, "a wait needs an epoll fd (manual 3.8)", "fd=%d is an rtasr fd", (int)asr);

    /* --- closing a watched fd reports EPOLLHUP (when HUP is in the mask) ------------------ */
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_MOD, asr, SPEAR_EPOLLHUP);
    step("ctl_mod_hup", rc, 0, "watch for HUP only", "events=0x10");
    rc = wait_records(ep, sizeof recs, 0);
    step("wait0_open", rc, 0, "an open fd is not hung up", NULL);
    rc = sp_rtasr_close(asr);
    step("rtasr_close", rc, 0, "close marks the entry closed and adds EPOLLHUP", NULL);
    rc = wait_records(ep, sizeof recs, 0);
    step("wait_hup", rc, 1, "the closed fd stays in the set and reports EPOLLHUP (R17)", "fd=%d events=0x%x", (int)recs[0].fd, (unsigned)recs[0].events);
    check("wait_hup", recs[0].fd == asr && recs[0].events == SPEAR_EPOLLHUP, "EPOLLHUP on the closed fd");
    rc = sp_rtasr_close(asr);
    step("rtasr_close_again", rc, 0, "close is idempotent (R8)", NULL);
    cell = sizeof buf;
    rc = sp_rtasr_read(asr, SP_PTR(buf), SP_PTR(&cell));
    step("read_closed", rc, -SPEAR_EBADF, "every other call on a closed fd is -EBADF (R47)", NULL);
    rc = sp_rtasr_write(asr, SP_PTR(buf), 4);
    step("write_closed", rc, -SPEAR_EBADF, "likewise for writes (R47)", NULL);
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_DEL, asr, 0);
    step("ctl_del_closed", rc, 0, "a closed fd can still be removed from the set (R21)", NULL);

    /* --- ERR/HUP are reported only when they are in the interest mask --------------------- */
    int32_t mic = sp_mic_create();
    step("mic_create", mic, asr + 1, "numbers keep counting across kinds; 1001 is never reused (R7)", "fd=%d", (int)mic);
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, mic, SPEAR_EPOLLIN);
    step("ctl_add_mic_in", rc, 0, "watch the mic for IN only", "events=0x1");
    rc = sp_mic_close(mic);
    step("mic_close", rc, 0, "any close closes any kind", NULL);
    rc = wait_records(ep, sizeof recs, 0);
    step("wait_hup_not_in_mask", rc, 0, "HUP is reported only when asked for (R22)", NULL);
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_MOD, mic, SPEAR_EPOLLIN | SPEAR_EPOLLHUP);
    step("ctl_mod_mic_hup", rc, 0, "ask for HUP too", "events=0x11");
    rc = wait_records(ep, sizeof recs, 0);
    step("wait_mic_hup", rc, 1, "now the closed mic fd is reported with EPOLLHUP (R17)", "fd=%d events=0x%x", (int)recs[0].fd, (unsigned)recs[0].events);
    check("wait_mic_hup", recs[0].fd == mic && recs[0].events == SPEAR_EPOLLHUP, "EPOLLHUP on the mic fd");
    rc = sp_mic_close(999);
    step("close_unknown", rc, -SPEAR_EBADF, "closing an fd that never existed is -EBADF (R8)", "fd=999");

    /* --- a closed epoll ------------------------------------------------------------------- */
    rc = sp_epoll_close(ep);
    step("epoll_close", rc, 0, "the generic close closes the epoll itself", NULL);
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, mic, SPEAR_EPOLLIN);
    step("ctl_closed_epfd", rc, -SPEAR_EBADF, "a closed epoll accepts no ctl (R20)", NULL);
    rc = wait_records(ep, sizeof recs, 0);
    step("wait_closed_epfd", rc, -SPEAR_EBADF, "a wait on a closed epoll is -EBADF too (R9)", NULL);

    printf("summary: steps=%d mismatches=%d\n", steps, mismatches);
    fflush(stdout);
    return mismatches == 0 ? 0 : 1;
}
