/*
 * installed_sdk_guest -- a guest compiled against the spear.h of an *installed* spear_lab
 * (scripts/check_installed.sh builds it with `clang $(spear-lab sdk --cflags)`).
 *
 * One rtasr fd with a 16-byte send queue under epoll: wait(0) reports EPOLLOUT, a 16-byte
 * write fills the queue, the next write gets -SPEAR_EAGAIN and EPOLLOUT goes away.
 * Prints `sdk_guest ok` and exits 0 when the host behaves so, else `sdk_guest FAIL: …`, 1.
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

static int fail(const char *what, int32_t rc) {
    printf("sdk_guest FAIL: %s rc=%d\n", what, (int)rc);
    return 1;
}

int main(void) {
    static const uint8_t frame[16];
    sp_epoll_event_t ev[4];
    int32_t ep = sp_epoll_create();
    int32_t fd = sp_rtasr_create();
    if (ep < 0 || fd < 0) return fail("create", ep < 0 ? ep : fd);
    int32_t rc = sp_rtasr_set_param_u32(fd, "max_send_queue_bytes", 16);
    if (rc < 0) return fail("set_param max_send_queue_bytes", rc);
    rc = sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, fd, SPEAR_EPOLLOUT);
    if (rc != 0) return fail("epoll_ctl ADD", rc);
    rc = sp_ep_wait_events(ep, ev, 4, 0);
    if (rc != 1 || ev[0].fd != fd || !(ev[0].events & SPEAR_EPOLLOUT)) return fail("wait OUT", rc);
    rc = sp_rtasr_write(fd, SP_PTR(frame), (int32_t)sizeof frame);
    if (rc != (int32_t)sizeof frame) return fail("write 16", rc);
    rc = sp_rtasr_write(fd, SP_PTR(frame), 1);
    if (rc != -SPEAR_EAGAIN) return fail("write when full (want -EAGAIN)", rc);
    rc = sp_ep_wait_events(ep, ev, 4, 0);
    if (rc != 0) return fail("wait when full (want no OUT)", rc);
    if (sp_rtasr_close(fd) != 0 || sp_epoll_close(ep) != 0) return fail("close", -1);
    printf("sdk_guest ok epfd=%d fd=%d eagain=%d\n", (int)ep, (int)fd, SPEAR_EAGAIN);
    return 0;
}
