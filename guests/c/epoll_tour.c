/*
 * epoll_tour -- the epoll rules of the spear ABI, one hostcall at a time.
 *
 * Every step makes one hostcall and prints its return value:
 *
 *   step <name>: rc=<int>[ <key>=<value> ...]
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

/* Print one step; compare with the expected value unless `expect` is ANY. */
static SP__PRINTF(4, 5) void step(const char *name, int32_t rc, int32_t expect,
                                  const char *detail_fmt, ...) {
    steps++;
    printf("step %s: rc=%d", name, (int)rc);
    if (detail_fmt != NULL && detail_fmt[0] != '\0') {
        va_list ap;
        va_start(ap, detail_fmt);
        putchar(' ');
        vprintf(detail_fmt, ap);
        va_end(ap);
    }
    putchar('\n');
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
    step("epoll_create", ep, ANY, "fd=%d", (int)ep);
    check("epoll_create", ep >= 1000, "fds start at 1000");
    int32_t asr = sp_rtasr_create();
    step("rtasr_create", asr, ep + 1, "fd=%d", (int)asr);

    /* --- epoll_ctl argument rules ----------------------------------------------------- */
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, ep, SPEAR_EPOLLIN);
    step("ctl_self", rc, -SPEAR_EINVAL, "an epoll cannot watch itself");
    rc = sp_epoll_ctl(ep, 4, asr, SPEAR_EPOLLIN);
    step("ctl_bad_op", rc, -SPEAR_EINVAL, "op=4");
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, 999, SPEAR_EPOLLIN);
    step("ctl_unknown_fd", rc, -SPEAR_EBADF, "fd=999");
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, asr,
                      SPEAR_EPOLLIN | SPEAR_EPOLLOUT | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);
    step("ctl_add", rc, 0, "fd=%d events=0x1d", (int)asr);

    /* --- a fresh rtasr fd is writable ----------------------------------------------------- */
    rc = wait_records(ep, sizeof recs, 0);
    step("wait0_out", rc, 1, "fd=%d events=0x%x cell=%u", (int)recs[0].fd,
         (unsigned)recs[0].events, (unsigned)cell);
    check("wait0_out", recs[0].fd == asr && recs[0].events == SPEAR_EPOLLOUT && cell == 8,
          "one record {rtasr fd, EPOLLOUT}, cell 8");

    /* --- backpressure: a 16-byte send queue --------------------------------------------- */
    rc = sp_rtasr_set_param_u32(asr, "max_send_queue_bytes", 16);
    step("set_max_send_queue_bytes", rc, 0, "value=16");
    memset(buf, 0x11, 16);
    rc = sp_rtasr_write(asr, SP_PTR(buf), 16);
    step("write16", rc, 16, "queued=16 limit=16");
    rc = wait_records(ep, sizeof recs, 0);
    step("wait0_full", rc, 0, "cell=%u (no EPOLLOUT while the queue is full)", (unsigned)cell);
    rc = sp_rtasr_write(asr, SP_PTR(buf), 1);
    step("write1", rc, -SPEAR_EAGAIN, "queue full: all-or-nothing");

    /* --- nothing to read yet --------------------------------------------------------------- */
    cell = sizeof buf;
    rc = sp_rtasr_read(asr, SP_PTR(buf), SP_PTR(&cell));
    step("read_empty", rc, -SPEAR_EAGAIN, NULL);

    /* --- generic fd control ------------------------------------------------------------------ */
    cell = 256;
    rc = sp_fd_ctl(asr, SPEAR_FD_CTL_GET_KIND, SP_PTR(buf), SP_PTR(&cell));
    if (rc >= 0) buf[rc] = '\0';
    step("fd_ctl_get_kind", rc, 16, "json=%s", rc >= 0 ? buf : "-");
    uint32_t slen = 0;
    char *status = sp_rtasr_get_status_alloc(asr, &slen);
    char state[32] = "-";
    if (status) sp_json_get_string(status, "state", state, sizeof state);
    step("get_status", (int32_t)slen, ANY, "state=%s", state);
    check("get_status", strcmp(state, "Configured") == 0, "state Configured after SET_PARAM");
    free(status);

    /* --- connect the stub transport: it drains the queue and emits events ------------- */
    rc = sp_rtasr_set_param_string(asr, "transport", "stub");
    step("set_transport_stub", rc, 0, NULL);
    rc = sp_rtasr_set_param_u32(asr, "stub_event_interval_ms", 20);
    step("set_stub_event_interval_ms", rc, 0, "value=20");
    rc = sp_rtasr_connect(asr);
    step("connect", rc, 0, NULL);

    /* watch for input only from now on */
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_MOD, asr, SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);
    step("ctl_mod_in", rc, 0, "events=0x19");
    rc = wait_records(ep, sizeof recs, 2000);
    step("wait_in", rc, 1, "fd=%d events=0x%x", (int)recs[0].fd, (unsigned)recs[0].events);
    check("wait_in", recs[0].fd == asr && recs[0].events == SPEAR_EPOLLIN, "EPOLLIN on the rtasr fd");

    /* --- level-triggered: unread input is reported again and again ------------------------- */
    rc = wait_records(ep, sizeof recs, 0);
    step("level_wait1", rc, 1, "fd=%d events=0x%x", (int)recs[0].fd, (unsigned)recs[0].events);
    rc = wait_records(ep, sizeof recs, 0);
    step("level_wait2", rc, 1, "fd=%d events=0x%x", (int)recs[0].fd, (unsigned)recs[0].events);
    check("level_wait2", recs[0].fd == asr && recs[0].events == SPEAR_EPOLLIN,
          "the same record as level_wait1");

    /* --- a too-small read buffer: -ENOSPC, needed length in the cell, nothing lost -------- */
    cell = 1;
    rc = sp_rtasr_read(asr, SP_PTR(buf), SP_PTR(&cell));
    uint32_t need = cell;
    step("read_small", rc, -SPEAR_ENOSPC, "cap=1 need=%u", (unsigned)need);
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
    step("read_retry", rc, (int32_t)need, "len=%d seq=%lld type=%s", (int)rc, (long long)seq, type);
    check("read_retry", seq == 1, "the retry returns the same (first) event, seq 1");

    /* --- drain until -EAGAIN ---------------------------------------------------------------- */
    int drained = 0;
    for (;;) {
        cell = sizeof buf;
        rc = sp_rtasr_read(asr, SP_PTR(buf), SP_PTR(&cell));
        if (rc < 0) break;
        drained++;
    }
    step("drain", rc, -SPEAR_EAGAIN, "events=%d", drained);

    /* --- wait's own buffer rules ------------------------------------------------------------ */
    rc = wait_records(ep, 4, 0);
    step("wait_small_cap", rc, -SPEAR_ENOSPC, "cap=4 cell=%u", (unsigned)cell);
    check("wait_small_cap", cell == 8, "8 (one record) written back into the cell");
    memset(recs, 0, sizeof recs);
    cell = 4;
    rc = sp_epoll_wait(999, SP_PTR(recs), SP_PTR(&cell), 0);
    step("wait_small_cap_bad_epfd", rc, -SPEAR_ENOSPC, "capacity is checked before the epfd");
    rc = wait_records(asr, sizeof recs, 0);
    step("wait_not_epoll", rc, -SPEAR_EBADF, "fd=%d is an rtasr fd", (int)asr);

    /* --- closing a watched fd reports EPOLLHUP (when HUP is in the mask) ------------------ */
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_MOD, asr, SPEAR_EPOLLHUP);
    step("ctl_mod_hup", rc, 0, "events=0x10");
    rc = wait_records(ep, sizeof recs, 0);
    step("wait0_open", rc, 0, "an open rtasr fd has no HUP");
    rc = sp_rtasr_close(asr);
    step("rtasr_close", rc, 0, NULL);
    rc = wait_records(ep, sizeof recs, 0);
    step("wait_hup", rc, 1, "fd=%d events=0x%x", (int)recs[0].fd, (unsigned)recs[0].events);
    check("wait_hup", recs[0].fd == asr && recs[0].events == SPEAR_EPOLLHUP, "EPOLLHUP on the closed fd");
    rc = sp_rtasr_close(asr);
    step("rtasr_close_again", rc, 0, "close is idempotent");
    cell = sizeof buf;
    rc = sp_rtasr_read(asr, SP_PTR(buf), SP_PTR(&cell));
    step("read_closed", rc, -SPEAR_EBADF, NULL);
    rc = sp_rtasr_write(asr, SP_PTR(buf), 4);
    step("write_closed", rc, -SPEAR_EBADF, NULL);
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_DEL, asr, 0);
    step("ctl_del_closed", rc, 0, "a closed fd can still be removed");

    /* --- ERR/HUP are reported only when they are in the interest mask --------------------- */
    int32_t mic = sp_mic_create();
    step("mic_create", mic, asr + 1, "fd=%d", (int)mic);
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, mic, SPEAR_EPOLLIN);
    step("ctl_add_mic_in", rc, 0, "events=0x1");
    rc = sp_mic_close(mic);
    step("mic_close", rc, 0, NULL);
    rc = wait_records(ep, sizeof recs, 0);
    step("wait_hup_not_in_mask", rc, 0, "closed, but HUP is not in the interest mask");
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_MOD, mic, SPEAR_EPOLLIN | SPEAR_EPOLLHUP);
    step("ctl_mod_mic_hup", rc, 0, "events=0x11");
    rc = wait_records(ep, sizeof recs, 0);
    step("wait_mic_hup", rc, 1, "fd=%d events=0x%x", (int)recs[0].fd, (unsigned)recs[0].events);
    check("wait_mic_hup", recs[0].fd == mic && recs[0].events == SPEAR_EPOLLHUP, "EPOLLHUP on the mic fd");
    rc = sp_mic_close(999);
    step("close_unknown", rc, -SPEAR_EBADF, "fd=999");

    /* --- a closed epoll ------------------------------------------------------------------- */
    rc = sp_epoll_close(ep);
    step("epoll_close", rc, 0, NULL);
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, mic, SPEAR_EPOLLIN);
    step("ctl_closed_epfd", rc, -SPEAR_EBADF, NULL);
    rc = wait_records(ep, sizeof recs, 0);
    step("wait_closed_epfd", rc, -SPEAR_EBADF, NULL);

    printf("summary: steps=%d mismatches=%d\n", steps, mismatches);
    fflush(stdout);
    return mismatches == 0 ? 0 : 1;
}
