/*
 * spear.h -- the C SDK for spear_lab WebAssembly guests.
 *
 * One header, no library: every hostcall is an import declaration and every helper is
 * `static inline`.  Build a guest with Debian's toolchain:
 *
 *     clang --target=wasm32-wasi -O2 -I guests/include -o g.wasm g.c
 *
 * ------------------------------------------------------------------------------------
 * The model, for a C programmer
 * ------------------------------------------------------------------------------------
 *
 * File descriptors.  The host keeps a table of fds per guest instance.  `*_create()`
 * never fails and returns a fresh number (1000, 1001, ... -- numbers are never reused,
 * across all kinds).  There are epoll fds, realtime-ASR fds (`rtasr`: you write PCM
 * audio, you read transcription events) and microphone fds (`mic`: you read PCM frames).
 * Any `*_close()` closes any kind of fd; closing twice returns 0.
 *
 * Everything is non-blocking.  `rtasr_write`, `rtasr_read` and `mic_read` never wait:
 * when there is no room / nothing to read they return -SPEAR_EAGAIN.  The only call that
 * blocks is `sp_epoll_wait` (and `sp_sleep_ms`).
 *
 * Return values.  Non-negative on success (0, a byte count, a record count, a new fd);
 * a NEGATED errno on failure, using LINUX numbers: -11 is EAGAIN, -9 EBADF, -14 EFAULT,
 * -22 EINVAL, -28 ENOSPC, -5 EIO.  Compare with the SPEAR_E* constants below, never with
 * <errno.h>: wasi-libc's <errno.h> has different numbers (its EAGAIN is 6 and its EINVAL
 * is 28, which is SPEAR's ENOSPC!).
 *
 * epoll.  `sp_epoll_ctl(epfd, SPEAR_EPOLL_CTL_ADD/MOD/DEL, fd, mask)` sets the interest
 * mask of fd; `sp_epoll_wait(epfd, out, &cell, timeout_ms)` fills `out` with packed
 * 8-byte records {int32 fd; uint32 events} (little-endian; see sp_epoll_event_t), lowest
 * fd first, one record per fd, and returns how many.  timeout 0 polls, -1 waits forever.
 *   - LEVEL-TRIGGERED ONLY: a condition is reported on every wait while it holds.  If you
 *     do not consume it (read until -EAGAIN, or drop the bit from the interest mask with
 *     SPEAR_EPOLL_CTL_MOD), the next wait returns at once.
 *   - EPOLLERR AND EPOLLHUP ARE REPORTED ONLY WHEN THEY ARE IN THE INTEREST MASK (unlike
 *     Linux).  Always add SPEAR_EPOLLERR | SPEAR_EPOLLHUP, or you will never see a closed
 *     or failed fd.
 *   - rtasr fds report IN (an event is queued), OUT (the send queue has room), ERR (the
 *     transport failed; see GET_STATUS "last_error"), HUP (closed / peer closed).
 *     mic fds report IN, ERR and HUP, never OUT.
 *
 * Output buffers (the length-cell protocol).  Calls that return data take `out_ptr` and
 * `out_len_ptr`.  The cell is a uint32 holding the CAPACITY of the buffer on entry.  If
 * the payload does not fit, the call returns -SPEAR_ENOSPC and stores the NEEDED length in
 * the cell (the data stays queued: retry with a bigger buffer).  On success it copies the
 * payload, stores its length in the cell and returns it.  Payloads are NOT NUL-terminated.
 * ctl calls use the same buffer for input and output: put the input length in the cell
 * (0 and arg_ptr 0 for "no input"); GET commands need the cell to hold the capacity, and
 * the host reads that many bytes of "input" first, so the whole buffer must be valid.
 *
 * Pointers.  Imports take guest pointers as int32_t offsets into linear memory; use
 * SP_PTR(p).  The module must export its memory as "memory" (clang does).  Address 0 is
 * a valid address for the host; negative values and ranges past the end give -EFAULT.
 *
 * JSON.  Control payloads and events are JSON text.  The host writes COMPACT JSON (no
 * spaces after ':' or ','), so simple substring searches work on host-generated text;
 * the sp_json_* helpers below tolerate spaces anyway.  Events from a real backend are
 * passed through unchanged.
 *
 * stdio.  In wasm builds `printf`, `fprintf` and `puts` are macros that send the text to
 * the host's log (SPEAR_REDIRECT_STDIO_TO_LOG), like the reference SDK; `fwrite`, `fputc`,
 * `putchar` still go to WASI stdout.  Define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG before
 * including this header to keep the real stdio functions.
 *
 * Reference SDK compatibility.  Code written for the SPEAR reference SDK compiles unchanged,
 * in C and in C++, with -Wall -Werror: its *_alloc helpers return uint8_t * (cast to
 * const char * for string functions), sp_log_write takes a const void * buffer,
 * SPEAR_EP_CTL_ADD/MOD/DEL are macros, and a NULL buffer or format gives -SPEAR_EFAULT
 * without logging.  C++ needs no C++ standard library:
 *
 *     clang++ --target=wasm32-wasi -O2 -nostdinc++ -nostdlib++ -fno-exceptions -fno-rtti \
 *             -I guests/include -o g.wasm g.cc
 *
 * Sections: 1 imports macro, 2 constants, 3 imports, 4 reference helpers, 5 spear_lab
 * extensions ([EXT]), 6 JSON reading helpers, 7 stdio redirection.
 */
#ifndef SPEAR_H
#define SPEAR_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==================================================================================== */
/* 1. Import macro and pointer conversion                                               */
/* ==================================================================================== */

/* Declare a function imported from the host module "spear" under `name`. */
#define SPEAR_IMPORT(name) __attribute__((import_module("spear"), import_name(name)))

/* A guest pointer as the int32_t offset the hostcalls take. */
#define SP_PTR(p) ((int32_t)(uintptr_t)(p))

#if defined(__GNUC__) || defined(__clang__)
#define SP__PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define SP__PRINTF(fmt_idx, arg_idx)
#endif

/* ==================================================================================== */
/* 2. Constants                                                                         */
/* ==================================================================================== */

/* errno numbers (Linux numbering, identical on every host).  Hostcalls return -value. */
enum {
    SPEAR_CCHAT_OK = 0,
    SPEAR_EPERM = 1,
    SPEAR_ENOENT = 2,
    SPEAR_EIO = 5,          /* fd in Error state, device failure                       */
    SPEAR_EBADF = 9,        /* unknown, closed or wrong-kind fd                        */
    SPEAR_EAGAIN = 11,      /* nothing to read / no room to write: wait for IN / OUT   */
    SPEAR_ENOMEM = 12,
    SPEAR_EACCES = 13,
    SPEAR_EFAULT = 14,      /* pointer or length outside linear memory                 */
    SPEAR_EINVAL = 22,      /* bad command, bad JSON, bad argument                     */
    SPEAR_ENOSPC = 28,      /* output buffer too small; needed length in the cell      */
    SPEAR_EPIPE = 32,       /* peer closed the connection                               */
    SPEAR_ENOSYS = 38,      /* hostcall not implemented (legacy families)              */
    SPEAR_ECONNRESET = 104,
    SPEAR_ENOTCONN = 107,
    SPEAR_ETIMEDOUT = 110,

    /* legacy aliases (already negated) */
    SPEAR_CCHAT_ERR_INVALID_FD = -9,
    SPEAR_CCHAT_ERR_INVALID_PTR = -14,
    SPEAR_CCHAT_ERR_BUFFER_TOO_SMALL = -28,
    SPEAR_CCHAT_ERR_INVALID_CMD = -22,
    SPEAR_CCHAT_ERR_INTERNAL = -5
};

/* chat (legacy family; hosts may answer -SPEAR_ENOSYS) */
enum {
    SPEAR_CCHAT_CTL_SET_PARAM = 1,
    SPEAR_CCHAT_CTL_GET_METRICS = 2
};
enum {
    SPEAR_CCHAT_SEND_FLAG_ENABLE_METRICS = 1,
    SPEAR_CCHAT_SEND_FLAG_AUTO_TOOL_CALL = 2
};
#define AUTO_TOOL_CALL SPEAR_CCHAT_SEND_FLAG_AUTO_TOOL_CALL

/* rtasr_ctl commands */
enum {
    SPEAR_RTA_CTL_SET_PARAM = 1,        /* in {"key":..,"value":..}                     */
    SPEAR_RTA_CTL_CONNECT = 2,          /* start the transport                          */
    SPEAR_RTA_CTL_GET_STATUS = 3,       /* out status JSON                               */
    SPEAR_RTA_CTL_SEND_EVENT = 4,       /* in any JSON client event                      */
    SPEAR_RTA_CTL_FLUSH = 5,            /* queue input_audio_buffer.commit               */
    SPEAR_RTA_CTL_CLEAR = 6,            /* queue input_audio_buffer.clear                */
    SPEAR_RTA_CTL_SET_AUTOFLUSH = 7,    /* in segmentation JSON                          */
    SPEAR_RTA_CTL_GET_AUTOFLUSH = 8,    /* out segmentation JSON                         */
    SPEAR_RTA_CTL_SET_SEGMENTATION = 7, /* [EXT] alias of SET_AUTOFLUSH                  */
    SPEAR_RTA_CTL_GET_SEGMENTATION = 8  /* [EXT] alias of GET_AUTOFLUSH                  */
};

/* mic_ctl commands */
enum {
    SPEAR_MIC_CTL_SET_PARAM = 1,    /* in config JSON; (re)starts capture               */
    SPEAR_MIC_CTL_GET_STATUS = 2,   /* out status JSON                                   */
    SPEAR_MIC_CTL_LIST_DEVICES = 3  /* [EXT] out {"devices":[...],"default":...}        */
};

/* user streams (legacy family) */
enum {
    SPEAR_USER_STREAM_DIR_INBOUND = 1,
    SPEAR_USER_STREAM_DIR_OUTBOUND = 2,
    SPEAR_USER_STREAM_DIR_BIDIRECTIONAL = 3
};
enum {
    SPEAR_USER_STREAM_CTL_EVENT_STREAM_CONNECTED = 1,
    SPEAR_USER_STREAM_CTL_EVENT_SESSION_CLOSED = 2
};
typedef struct sp_user_stream_ctl_event_t {
    uint32_t stream_id;
    uint32_t kind;
} sp_user_stream_ctl_event_t;

/* epoll */
enum {
    SPEAR_EPOLL_CTL_ADD = 1, /* watch fd (or replace its mask; no EEXIST)             */
    SPEAR_EPOLL_CTL_MOD = 2, /* replace the mask                                       */
    SPEAR_EPOLL_CTL_DEL = 3  /* stop watching (no ENOENT)                              */
};
/* The reference SDK's short names are macros (usable in #if / #ifdef). */
#define SPEAR_EP_CTL_ADD 1
#define SPEAR_EP_CTL_MOD 2
#define SPEAR_EP_CTL_DEL 3
enum {
    SPEAR_EPOLLIN = 0x001,
    SPEAR_EPOLLOUT = 0x004,
    SPEAR_EPOLLERR = 0x008, /* only reported when in the interest mask */
    SPEAR_EPOLLHUP = 0x010  /* only reported when in the interest mask */
};

/* One record written by sp_epoll_wait (8 bytes, little-endian). */
typedef struct sp_epoll_event_t {
    int32_t fd;
    uint32_t events;
} sp_epoll_event_t;

/* spear_fd_ctl commands */
enum {
    SPEAR_FD_CTL_SET_FLAGS = 1,  /* in {"set":["O_NONBLOCK"],"clear":[]}               */
    SPEAR_FD_CTL_GET_FLAGS = 2,  /* out {"flags":[...]}                                 */
    SPEAR_FD_CTL_GET_KIND = 3,   /* out {"kind":"RtAsr"}                                */
    SPEAR_FD_CTL_GET_STATUS = 4, /* out {"closed":..,"flags":..,"kind":..,"poll_mask":..} */
    SPEAR_FD_CTL_GET_METRICS = 5 /* out {} for Epoll, RtAsr, Mic                        */
};

/* log levels */
enum {
    SP_LOG_TRACE = 0,
    SP_LOG_DEBUG = 1,
    SP_LOG_INFO = 2,
    SP_LOG_WARN = 3,
    SP_LOG_ERROR = 4
};

/* Longest message the log hostcall accepts. */
#define SP_LOG_MAX_BYTES 16384

/* ==================================================================================== */
/* 3. Imports (module "spear")                                                          */
/* ==================================================================================== */

/* clocks, randomness, sleep */
SPEAR_IMPORT("time_now_ms") int64_t sp_time_now_ms(void);   /* ms since Unix epoch   */
SPEAR_IMPORT("wall_time_s") int64_t sp_wall_time_s(void);   /* s since Unix epoch    */
SPEAR_IMPORT("random_i64") int64_t sp_random_i64(void);     /* uniform random i64    */
SPEAR_IMPORT("sleep_ms") void sp_sleep_ms(int32_t ms);      /* negative = 0          */

/* logging: level SP_LOG_*, message bytes (<= 16384, UTF-8) */
SPEAR_IMPORT("log") int32_t sp_log(int32_t level, int32_t msg_ptr, int32_t msg_len);

/* epoll */
SPEAR_IMPORT("spear_epoll_create") int32_t sp_epoll_create(void);
SPEAR_IMPORT("spear_epoll_ctl")
int32_t sp_epoll_ctl(int32_t epfd, int32_t op, int32_t fd, int32_t events);
SPEAR_IMPORT("spear_epoll_wait")
int32_t sp_epoll_wait(int32_t epfd, int32_t out_ptr, int32_t out_len_ptr, int32_t timeout_ms);
SPEAR_IMPORT("spear_epoll_close") int32_t sp_epoll_close(int32_t epfd);

/* generic fd control */
SPEAR_IMPORT("spear_fd_ctl")
int32_t sp_fd_ctl(int32_t fd, int32_t cmd, int32_t arg_ptr, int32_t arg_len_ptr);

/* realtime ASR */
SPEAR_IMPORT("rtasr_create") int32_t sp_rtasr_create(void);
SPEAR_IMPORT("rtasr_ctl")
int32_t sp_rtasr_ctl(int32_t fd, int32_t cmd, int32_t arg_ptr, int32_t arg_len_ptr);
SPEAR_IMPORT("rtasr_write") int32_t sp_rtasr_write(int32_t fd, int32_t buf_ptr, int32_t buf_len);
SPEAR_IMPORT("rtasr_read") int32_t sp_rtasr_read(int32_t fd, int32_t out_ptr, int32_t out_len_ptr);
SPEAR_IMPORT("rtasr_close") int32_t sp_rtasr_close(int32_t fd);

/* microphone */
SPEAR_IMPORT("mic_create") int32_t sp_mic_create(void);
SPEAR_IMPORT("mic_ctl")
int32_t sp_mic_ctl(int32_t fd, int32_t cmd, int32_t arg_ptr, int32_t arg_len_ptr);
SPEAR_IMPORT("mic_read") int32_t sp_mic_read(int32_t fd, int32_t out_ptr, int32_t out_len_ptr);
SPEAR_IMPORT("mic_close") int32_t sp_mic_close(int32_t fd);

/* chat (legacy family, out of scope for spear_lab: hosts may answer -SPEAR_ENOSYS) */
SPEAR_IMPORT("cchat_create") int32_t sp_cchat_create(void);
SPEAR_IMPORT("cchat_write_msg")
int32_t sp_cchat_write_msg(int32_t fd, int32_t role_ptr, int32_t role_len,
                           int32_t content_ptr, int32_t content_len);
SPEAR_IMPORT("cchat_write_fn")
int32_t sp_cchat_write_fn(int32_t fd, int32_t fn_offset, int32_t fn_ptr, int32_t fn_len);
SPEAR_IMPORT("cchat_ctl")
int32_t sp_cchat_ctl(int32_t fd, int32_t cmd, int32_t arg_ptr, int32_t arg_len_ptr);
SPEAR_IMPORT("cchat_send") int32_t sp_cchat_send(int32_t fd, int32_t flags);
SPEAR_IMPORT("cchat_recv")
int32_t sp_cchat_recv(int32_t resp_fd, int32_t out_ptr, int32_t out_len_ptr);
SPEAR_IMPORT("cchat_close") int32_t sp_cchat_close(int32_t fd);

/* user streams (legacy family, out of scope for spear_lab) */
SPEAR_IMPORT("user_stream_open") int32_t sp_user_stream_open(int32_t stream_id, int32_t direction);
SPEAR_IMPORT("user_stream_read")
int32_t sp_user_stream_read(int32_t fd, int32_t out_ptr, int32_t out_len_ptr);
SPEAR_IMPORT("user_stream_write")
int32_t sp_user_stream_write(int32_t fd, int32_t buf_ptr, int32_t buf_len);
SPEAR_IMPORT("user_stream_close") int32_t sp_user_stream_close(int32_t fd);
SPEAR_IMPORT("user_stream_ctl_open") int32_t sp_user_stream_ctl_open(void);
SPEAR_IMPORT("user_stream_ctl_read")
int32_t sp_user_stream_ctl_read(int32_t fd, int32_t out_ptr, int32_t out_len_ptr);

/* ==================================================================================== */
/* 4. Helpers of the reference SDK                                                      */
/* ==================================================================================== */

/* --- epoll aliases ------------------------------------------------------------------ */

static inline int32_t sp_ep_create(void) { return sp_epoll_create(); }
static inline int32_t sp_ep_ctl(int32_t epfd, int32_t op, int32_t fd, int32_t events) {
    return sp_epoll_ctl(epfd, op, fd, events);
}
static inline int32_t sp_ep_wait(int32_t epfd, int32_t out_ptr, int32_t out_len_ptr,
                                 int32_t timeout_ms) {
    return sp_epoll_wait(epfd, out_ptr, out_len_ptr, timeout_ms);
}
static inline int32_t sp_ep_close(int32_t epfd) { return sp_epoll_close(epfd); }

/* --- logging ------------------------------------------------------------------------ */

/* Log `len` bytes at `level`; longer messages are clipped to 16384 bytes.
 * Returns the hostcall result (0), or -SPEAR_EFAULT for NULL with a non-zero length. */
static inline int32_t sp_log_write(int32_t level, const void *msg, size_t len) {
    if (msg == NULL && len != 0) return -SPEAR_EFAULT;
    if (len > SP_LOG_MAX_BYTES) len = SP_LOG_MAX_BYTES;
    return sp_log(level, SP_PTR(msg), (int32_t)len);
}

static inline int32_t sp_log_str(int32_t level, const char *s) {
    if (s == NULL) return -SPEAR_EFAULT;
    return sp_log_write(level, s, strlen(s));
}

/* Format and log.  Up to 1 KiB on the stack, longer text on the heap (clipped at
 * 16 KiB).  Returns the number of bytes logged, or a negative errno (-SPEAR_EFAULT for
 * a NULL format, which logs nothing). */
static inline int sp_vlogf(int32_t level, const char *fmt, va_list ap) {
    if (fmt == NULL) return -SPEAR_EFAULT;
    char small[1024];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return -SPEAR_EINVAL;
    }
    if ((size_t)n < sizeof small) {
        va_end(ap2);
        int32_t rc = sp_log_write(level, small, (size_t)n);
        return rc < 0 ? rc : n;
    }
    size_t want = (size_t)n > SP_LOG_MAX_BYTES ? SP_LOG_MAX_BYTES : (size_t)n;
    char *big = (char *)malloc(want + 1);
    if (big == NULL) {
        va_end(ap2);
        int32_t rc = sp_log_write(level, small, sizeof small - 1);
        return rc < 0 ? rc : (int)(sizeof small - 1);
    }
    vsnprintf(big, want + 1, fmt, ap2);
    va_end(ap2);
    int32_t rc = sp_log_write(level, big, want);
    free(big);
    return rc < 0 ? rc : (int)want;
}

static inline SP__PRINTF(2, 3) int sp_logf(int32_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = sp_vlogf(level, fmt, ap);
    va_end(ap);
    return rc;
}

/* Level shortcuts: format into a 1 KiB buffer (longer text truncated to 1023 bytes). */
static inline int sp__vlogf_small(int32_t level, const char *fmt, va_list ap) {
    if (fmt == NULL) return -SPEAR_EFAULT;
    char buf[1024];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n < 0) return -SPEAR_EINVAL;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    int32_t rc = sp_log_write(level, buf, (size_t)n);
    return rc < 0 ? rc : n;
}
#define SP__DEFINE_LEVEL_LOGF(fn, level)                                  \
    static inline SP__PRINTF(1, 2) int fn(const char *fmt, ...) {         \
        va_list ap;                                                       \
        va_start(ap, fmt);                                                \
        int rc = sp__vlogf_small(level, fmt, ap);                         \
        va_end(ap);                                                       \
        return rc;                                                        \
    }
SP__DEFINE_LEVEL_LOGF(sp_tracef, SP_LOG_TRACE)
SP__DEFINE_LEVEL_LOGF(sp_debugf, SP_LOG_DEBUG)
SP__DEFINE_LEVEL_LOGF(sp_infof, SP_LOG_INFO)
SP__DEFINE_LEVEL_LOGF(sp_warnf, SP_LOG_WARN)
SP__DEFINE_LEVEL_LOGF(sp_errorf, SP_LOG_ERROR)
#undef SP__DEFINE_LEVEL_LOGF

/* fprintf replacement: stderr -> ERROR, stdout or NULL -> INFO, other streams -> DEBUG. */
static inline SP__PRINTF(2, 3) int sp_fprintf(FILE *stream, const char *fmt, ...) {
    int32_t level = SP_LOG_DEBUG;
    if (stream == stderr) level = SP_LOG_ERROR;
    else if (stream == stdout || stream == NULL) level = SP_LOG_INFO;
    va_list ap;
    va_start(ap, fmt);
    int rc = sp__vlogf_small(level, fmt, ap);
    va_end(ap);
    return rc;
}

/* puts replacement: logs s plus a newline at INFO. */
static inline int sp_puts_log(const char *s) {
    if (s == NULL) return -SPEAR_EFAULT;
    return sp_logf(SP_LOG_INFO, "%s\n", s);
}

/* --- internal: generic ctl / read helpers ------------------------------------------- */
/* They take the import to call as a function pointer; after inlining only the imports a
 * guest really uses end up in its import section. */

typedef int32_t (*sp__ctl_fn)(int32_t fd, int32_t cmd, int32_t arg_ptr, int32_t arg_len_ptr);
typedef int32_t (*sp__read_fn)(int32_t fd, int32_t out_ptr, int32_t out_len_ptr);

/* ctl with an input payload and no output. */
static inline int32_t sp__ctl_in(sp__ctl_fn ctl, int32_t fd, int32_t cmd, const char *data,
                                 size_t len) {
    uint32_t cell = (uint32_t)len;
    return ctl(fd, cmd, SP_PTR(data), SP_PTR(&cell));
}

/* ctl without input or output (arg_ptr 0, cell holding 0). */
static inline int32_t sp__ctl_none(sp__ctl_fn ctl, int32_t fd, int32_t cmd) {
    uint32_t cell = 0;
    return ctl(fd, cmd, 0, SP_PTR(&cell));
}

/* SET_PARAM {"key":"<key>","value":"<value>"} WITHOUT escaping; -SPEAR_EIO if over 511 bytes. */
static inline int32_t sp__param_string(sp__ctl_fn ctl, int32_t fd, const char *key,
                                       const char *value) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "{\"key\":\"%s\",\"value\":\"%s\"}", key, value);
    if (n < 0 || (size_t)n >= sizeof buf) return -SPEAR_EIO;
    return sp__ctl_in(ctl, fd, 1 /* SET_PARAM in every family */, buf, (size_t)n);
}

/* SET_PARAM {"key":"<key>","value":<value>}; -SPEAR_EIO if over 255 bytes. */
static inline int32_t sp__param_u32(sp__ctl_fn ctl, int32_t fd, const char *key, uint32_t value) {
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"key\":\"%s\",\"value\":%u}", key, (unsigned)value);
    if (n < 0 || (size_t)n >= sizeof buf) return -SPEAR_EIO;
    return sp__ctl_in(ctl, fd, 1, buf, (size_t)n);
}

/* GET-style ctl into a malloc'd buffer, growing on -SPEAR_ENOSPC (at most 3 attempts).
 * The result is NUL-terminated; *out_len (if given) gets the payload length. */
static inline char *sp__ctl_get_alloc(sp__ctl_fn ctl, int32_t fd, int32_t cmd, size_t initial,
                                      uint32_t *out_len) {
    size_t cap = initial;
    if (out_len) *out_len = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        char *buf = (char *)malloc(cap + 1);
        if (buf == NULL) return NULL;
        uint32_t cell = (uint32_t)cap;
        int32_t rc = ctl(fd, cmd, SP_PTR(buf), SP_PTR(&cell));
        if (rc >= 0) {
            size_t n = (size_t)rc <= cap ? (size_t)rc : cap;
            buf[n] = '\0';
            if (out_len) *out_len = (uint32_t)n;
            return buf;
        }
        free(buf);
        if (rc != -SPEAR_ENOSPC || cell <= cap) return NULL;
        cap = cell;
    }
    return NULL;
}

/* Read into a malloc'd buffer (initial capacity `initial`), growing on -SPEAR_ENOSPC
 * (at most 3 attempts).  NUL-terminated when `nul` (one extra byte is allocated either
 * way).  NULL on any other error, -SPEAR_EAGAIN included. */
static inline char *sp__read_alloc(sp__read_fn rd, int32_t fd, size_t initial, int nul,
                                   uint32_t *out_len) {
    size_t cap = initial;
    if (out_len) *out_len = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        char *buf = (char *)malloc(cap + 1);
        if (buf == NULL) return NULL;
        uint32_t cell = (uint32_t)cap;
        int32_t rc = rd(fd, SP_PTR(buf), SP_PTR(&cell));
        if (rc >= 0) {
            size_t n = (size_t)rc <= cap ? (size_t)rc : cap;
            if (nul) buf[n] = '\0';
            if (out_len) *out_len = (uint32_t)n;
            return buf;
        }
        free(buf);
        if (rc != -SPEAR_ENOSPC || cell <= cap) return NULL;
        cap = cell;
    }
    return NULL;
}

/* --- chat (legacy) ------------------------------------------------------------------ */

static inline int32_t sp_cchat_write_msg_str(int32_t fd, const char *role, const char *content) {
    return sp_cchat_write_msg(fd, SP_PTR(role), (int32_t)strlen(role), SP_PTR(content),
                              (int32_t)strlen(content));
}
static inline int32_t sp_cchat_write_fn_str(int32_t fd, int32_t fn_offset, const char *fn_json) {
    return sp_cchat_write_fn(fd, fn_offset, SP_PTR(fn_json), (int32_t)strlen(fn_json));
}
static inline int32_t sp_cchat_set_param_json(int32_t fd, const char *json, size_t len) {
    return sp__ctl_in(sp_cchat_ctl, fd, SPEAR_CCHAT_CTL_SET_PARAM, json, len);
}
/* {"key":"<key>","value":"<value>"} WITHOUT escaping (see the *_escaped variants). */
static inline int32_t sp_cchat_set_param_string(int32_t fd, const char *key, const char *value) {
    return sp__param_string(sp_cchat_ctl, fd, key, value);
}
static inline int32_t sp_cchat_set_param_u32(int32_t fd, const char *key, uint32_t value) {
    return sp__param_u32(sp_cchat_ctl, fd, key, value);
}
/* Receive one response into a malloc'd, NUL-terminated buffer; caller frees. */
static inline uint8_t *sp_cchat_recv_alloc(int32_t resp_fd, uint32_t *out_len) {
    return (uint8_t *)sp__read_alloc(sp_cchat_recv, resp_fd, 64 * 1024, 1, out_len);
}

/* --- rtasr ----------------------------------------------------------------------------- */

/* SET_PARAM with a complete {"key":..,"value":..} payload. */
static inline int32_t sp_rtasr_set_param_json(int32_t fd, const char *json, size_t len) {
    return sp__ctl_in(sp_rtasr_ctl, fd, SPEAR_RTA_CTL_SET_PARAM, json, len);
}
/* {"key":"<key>","value":"<value>"} WITHOUT escaping; -SPEAR_EIO if over 511 bytes. */
static inline int32_t sp_rtasr_set_param_string(int32_t fd, const char *key, const char *value) {
    return sp__param_string(sp_rtasr_ctl, fd, key, value);
}
static inline int32_t sp_rtasr_set_param_u32(int32_t fd, const char *key, uint32_t value) {
    return sp__param_u32(sp_rtasr_ctl, fd, key, value);
}
static inline int32_t sp_rtasr_connect(int32_t fd) {
    return sp__ctl_none(sp_rtasr_ctl, fd, SPEAR_RTA_CTL_CONNECT);
}
static inline int32_t sp_rtasr_flush(int32_t fd) {
    return sp__ctl_none(sp_rtasr_ctl, fd, SPEAR_RTA_CTL_FLUSH);
}
static inline int32_t sp_rtasr_set_autoflush_json(int32_t fd, const char *json, size_t len) {
    return sp__ctl_in(sp_rtasr_ctl, fd, SPEAR_RTA_CTL_SET_AUTOFLUSH, json, len);
}
/* Read one event into a malloc'd, NUL-terminated buffer (64 KiB first, grown on
 * -ENOSPC); NULL on -EAGAIN or any error.  Caller frees. */
static inline uint8_t *sp_rtasr_read_alloc(int32_t fd, uint32_t *out_len) {
    return (uint8_t *)sp__read_alloc(sp_rtasr_read, fd, 64 * 1024, 1, out_len);
}

/* --- mic ------------------------------------------------------------------------------ */

static inline int32_t sp_mic_set_param_json(int32_t fd, const char *json, size_t len) {
    return sp__ctl_in(sp_mic_ctl, fd, SPEAR_MIC_CTL_SET_PARAM, json, len);
}
/* Status JSON (8 KiB first, retried on -SPEAR_ENOSPC), NUL-terminated; caller frees. */
static inline uint8_t *sp_mic_get_status_alloc(int32_t fd, uint32_t *out_len) {
    return (uint8_t *)sp__ctl_get_alloc(sp_mic_ctl, fd, SPEAR_MIC_CTL_GET_STATUS, 8 * 1024, out_len);
}
/* Read one PCM frame into a malloc'd buffer (64 KiB first; NOT NUL-terminated). */
static inline uint8_t *sp_mic_read_alloc(int32_t fd, uint32_t *out_len) {
    return (uint8_t *)sp__read_alloc(sp_mic_read, fd, 64 * 1024, 0, out_len);
}

/* --- user streams (legacy) --------------------------------------------------------------- */

static inline uint8_t *sp_user_stream_read_alloc(int32_t fd, uint32_t *out_len) {
    return (uint8_t *)sp__read_alloc(sp_user_stream_read, fd, 64 * 1024, 0, out_len);
}
static inline int32_t sp_user_stream_ctl_read_event(int32_t fd, sp_user_stream_ctl_event_t *evt) {
    if (evt == NULL) return -SPEAR_EFAULT;
    uint32_t cell = (uint32_t)sizeof *evt;
    return sp_user_stream_ctl_read(fd, SP_PTR(evt), SP_PTR(&cell));
}

/* ==================================================================================== */
/* 5. spear_lab extensions [EXT]                                                        */
/* ==================================================================================== */

/* --- epoll with typed records --------------------------------------------------------- */

/* Wait into `events[0..max_events)`; returns the record count or -errno. */
static inline int32_t sp_ep_wait_events(int32_t epfd, sp_epoll_event_t *events, int max_events,
                                        int32_t timeout_ms) {
    uint32_t cell = max_events > 0 ? (uint32_t)max_events * (uint32_t)sizeof(sp_epoll_event_t) : 0;
    return sp_epoll_wait(epfd, SP_PTR(events), SP_PTR(&cell), timeout_ms);
}

/* --- JSON string escaping --------------------------------------------------------------- */

/* Write `s[0..n)` JSON-escaped (no surrounding quotes) into out[0..cap) like snprintf:
 * always NUL-terminates when cap > 0 and returns the full escaped length.  Escapes '"',
 * '\\' and control characters; other bytes (UTF-8) pass through. */
static inline size_t sp_json_escape(char *out, size_t cap, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
#define SP__PUT(c) do { if (o + 1 < cap) out[o] = (char)(c); o++; } while (0)
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': SP__PUT('\\'); SP__PUT('"'); break;
        case '\\': SP__PUT('\\'); SP__PUT('\\'); break;
        case '\n': SP__PUT('\\'); SP__PUT('n'); break;
        case '\r': SP__PUT('\\'); SP__PUT('r'); break;
        case '\t': SP__PUT('\\'); SP__PUT('t'); break;
        case '\b': SP__PUT('\\'); SP__PUT('b'); break;
        case '\f': SP__PUT('\\'); SP__PUT('f'); break;
        default:
            if (c < 0x20) {
                SP__PUT('\\'); SP__PUT('u'); SP__PUT('0'); SP__PUT('0');
                SP__PUT(hex[c >> 4]); SP__PUT(hex[c & 15]);
            } else {
                SP__PUT(c);
            }
        }
    }
#undef SP__PUT
    if (cap > 0) out[o < cap ? o : cap - 1] = '\0';
    return o;
}

/* Build {"key":"<key, escaped>","value":<value>} and send it as SET_PARAM through `ctl`.
 * `value_is_string` quotes and escapes `value`; otherwise `value` must be JSON text and
 * is copied verbatim.  Any length (heap beyond 512 bytes). */
static inline int32_t sp__set_param_kv(sp__ctl_fn ctl, int32_t cmd, int32_t fd, const char *key,
                                       const char *value, int value_is_string) {
    if (key == NULL || value == NULL) return -SPEAR_EFAULT;
    size_t klen = strlen(key), vlen = strlen(value);
    size_t kesc = sp_json_escape(NULL, 0, key, klen);
    size_t vesc = value_is_string ? sp_json_escape(NULL, 0, value, vlen) : vlen;
    size_t total = 8 + kesc + 11 + vesc + 2 + 1; /* {"key":" K ","value":" V "} NUL */
    char small[512];
    char *buf = total <= sizeof small ? small : (char *)malloc(total);
    if (buf == NULL) return -SPEAR_ENOMEM;
    size_t o = 0;
    memcpy(buf + o, "{\"key\":\"", 8); o += 8;
    sp_json_escape(buf + o, kesc + 1, key, klen); o += kesc;
    if (value_is_string) {
        memcpy(buf + o, "\",\"value\":\"", 11); o += 11;
        sp_json_escape(buf + o, vesc + 1, value, vlen); o += vesc;
        memcpy(buf + o, "\"}", 2); o += 2;
    } else {
        memcpy(buf + o, "\",\"value\":", 10); o += 10;
        memcpy(buf + o, value, vlen); o += vlen;
        buf[o++] = '}';
    }
    buf[o] = '\0';
    int32_t rc = sp__ctl_in(ctl, fd, cmd, buf, o);
    if (buf != small) free(buf);
    return rc;
}

/* SET_PARAM with a string value, JSON-escaping key and value (any length). */
static inline int32_t sp_rtasr_set_param_string_escaped(int32_t fd, const char *key,
                                                        const char *value) {
    return sp__set_param_kv(sp_rtasr_ctl, SPEAR_RTA_CTL_SET_PARAM, fd, key, value, 1);
}
static inline int32_t sp_cchat_set_param_string_escaped(int32_t fd, const char *key,
                                                        const char *value) {
    return sp__set_param_kv(sp_cchat_ctl, SPEAR_CCHAT_CTL_SET_PARAM, fd, key, value, 1);
}
/* SET_PARAM whose value is raw JSON text, e.g. sp_rtasr_set_param_value(fd, "x", "[1,2]"). */
static inline int32_t sp_rtasr_set_param_value(int32_t fd, const char *key, const char *value_json) {
    return sp__set_param_kv(sp_rtasr_ctl, SPEAR_RTA_CTL_SET_PARAM, fd, key, value_json, 0);
}
static inline int32_t sp_rtasr_set_param_i64(int32_t fd, const char *key, int64_t value) {
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)value);
    return sp__set_param_kv(sp_rtasr_ctl, SPEAR_RTA_CTL_SET_PARAM, fd, key, num, 0);
}

/* --- rtasr control --------------------------------------------------------------------- */

static inline int32_t sp_rtasr_clear(int32_t fd) {
    return sp__ctl_none(sp_rtasr_ctl, fd, SPEAR_RTA_CTL_CLEAR);
}
/* SEND_EVENT: queue a client event (any JSON) for the backend. */
static inline int32_t sp_rtasr_send_event_json(int32_t fd, const char *json, size_t len) {
    return sp__ctl_in(sp_rtasr_ctl, fd, SPEAR_RTA_CTL_SEND_EVENT, json, len);
}
/* Alias of sp_rtasr_set_autoflush_json under the newer name. */
static inline int32_t sp_rtasr_set_segmentation_json(int32_t fd, const char *json, size_t len) {
    return sp__ctl_in(sp_rtasr_ctl, fd, SPEAR_RTA_CTL_SET_SEGMENTATION, json, len);
}
/* GET_STATUS / GET_AUTOFLUSH as malloc'd NUL-terminated JSON (NULL on error). */
static inline char *sp_rtasr_get_status_alloc(int32_t fd, uint32_t *out_len) {
    return sp__ctl_get_alloc(sp_rtasr_ctl, fd, SPEAR_RTA_CTL_GET_STATUS, 1024, out_len);
}
static inline char *sp_rtasr_get_autoflush_alloc(int32_t fd, uint32_t *out_len) {
    return sp__ctl_get_alloc(sp_rtasr_ctl, fd, SPEAR_RTA_CTL_GET_AUTOFLUSH, 1024, out_len);
}
static inline char *sp_rtasr_get_segmentation_alloc(int32_t fd, uint32_t *out_len) {
    return sp_rtasr_get_autoflush_alloc(fd, out_len);
}

/* --- mic / fd ctl ------------------------------------------------------------------------- */

static inline char *sp_mic_list_devices_alloc(int32_t fd, uint32_t *out_len) {
    return sp__ctl_get_alloc(sp_mic_ctl, fd, SPEAR_MIC_CTL_LIST_DEVICES, 4096, out_len);
}
/* spear_fd_ctl GET_FLAGS/GET_KIND/GET_STATUS/GET_METRICS as malloc'd JSON. */
static inline char *sp_fd_ctl_get_alloc(int32_t fd, int32_t cmd, uint32_t *out_len) {
    return sp__ctl_get_alloc(sp_fd_ctl, fd, cmd, 256, out_len);
}
static inline int32_t sp_fd_ctl_set_flags_json(int32_t fd, const char *json, size_t len) {
    return sp__ctl_in(sp_fd_ctl, fd, SPEAR_FD_CTL_SET_FLAGS, json, len);
}

/* --- reads into a reusable growable buffer ------------------------------------------------ */

/* Read one item into *buf (capacity *cap, NUL-terminated; allocated/grown as needed so a
 * -ENOSPC is retried transparently).  Returns the length, or -errno (-SPEAR_EAGAIN when
 * nothing is queued, -SPEAR_ENOMEM if growing failed).  Free *buf when done. */
static inline int32_t sp__read_buf(sp__read_fn rd, int32_t fd, char **buf, uint32_t *cap) {
    if (*buf == NULL || *cap < 2) {
        uint32_t want = *cap < 4096 ? 4096 : *cap;
        char *nb = (char *)realloc(*buf, want);
        if (nb == NULL) return -SPEAR_ENOMEM;
        *buf = nb;
        *cap = want;
    }
    for (int attempt = 0; attempt < 4; attempt++) {
        uint32_t cell = *cap - 1; /* keep one byte for the NUL */
        int32_t rc = rd(fd, SP_PTR(*buf), SP_PTR(&cell));
        if (rc >= 0) {
            (*buf)[(uint32_t)rc < *cap ? (uint32_t)rc : *cap - 1] = '\0';
            return rc;
        }
        if (rc != -SPEAR_ENOSPC || cell < *cap) return rc;
        char *nb = (char *)realloc(*buf, (size_t)cell + 1);
        if (nb == NULL) return -SPEAR_ENOMEM;
        *buf = nb;
        *cap = cell + 1;
    }
    return -SPEAR_ENOSPC;
}
static inline int32_t sp_rtasr_read_buf(int32_t fd, char **buf, uint32_t *cap) {
    return sp__read_buf(sp_rtasr_read, fd, buf, cap);
}
static inline int32_t sp_mic_read_buf(int32_t fd, char **buf, uint32_t *cap) {
    return sp__read_buf(sp_mic_read, fd, buf, cap);
}

/* ==================================================================================== */
/* 6. Reading JSON events                                                               */
/* ==================================================================================== */
/*
 * Small, allocation-free helpers for pulling fields out of one JSON document (an event).
 * sp_json_find() looks for a member named `key`: one of the outermost object first (so
 * "type" is the event's own type even when a nested object, listed earlier because the
 * host sorts keys, has a "type" too), else the first nested one in document order, e.g.
 * "message" inside {"type":"error","error":{"message":..}}.  Keys inside string values
 * are never matched.  Key names are compared byte for byte
 * (write escaped keys as they appear in the text).  Whitespace is tolerated.
 */

static inline const char *sp__json_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* p at an opening quote: pointer just past the closing quote, or NULL if unterminated. */
static inline const char *sp__json_str_end(const char *p) {
    for (p++; *p; p++) {
        if (*p == '\\') {
            if (p[1] == '\0') return NULL;
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* Pointer to the value of member `key`, or NULL.  A member of the outermost object wins;
 * otherwise the first nested member of that name in document order. */
static inline const char *sp_json_find(const char *json, const char *key) {
    if (json == NULL || key == NULL) return NULL;
    size_t klen = strlen(key);
    const char *p = json, *nested = NULL;
    int depth = 0;
    while (*p) {
        char c = *p;
        if (c == '{' || c == '[') {
            depth++;
            p++;
            continue;
        }
        if (c == '}' || c == ']') {
            depth--;
            p++;
            continue;
        }
        if (c != '"') {
            p++;
            continue;
        }
        const char *end = sp__json_str_end(p);
        if (end == NULL) break;
        const char *q = sp__json_ws(end);
        if (*q == ':' && (size_t)(end - p - 2) == klen && memcmp(p + 1, key, klen) == 0) {
            if (depth <= 1) return sp__json_ws(q + 1);
            if (nested == NULL) nested = sp__json_ws(q + 1);
        }
        p = end;
    }
    return nested;
}

/* Length of the raw JSON value starting at v (string, number, literal, object, array),
 * or 0 if malformed. */
static inline size_t sp_json_value_len(const char *v) {
    if (v == NULL) return 0;
    const char *p = v;
    if (*p == '"') {
        const char *e = sp__json_str_end(p);
        return e ? (size_t)(e - v) : 0;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                p = sp__json_str_end(p);
                if (p == NULL) return 0;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0) return (size_t)(p + 1 - v);
            }
            p++;
        }
        return 0;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
           *p != '\r' && *p != '\t')
        p++;
    return (size_t)(p - v);
}

static inline int sp__hex4(const char *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* Decode the JSON string starting at the quote `v` into out[0..cap) (NUL-terminated when
 * cap > 0, truncated if needed, never splitting an escape).  Handles \" \\ \/ \b \f \n
 * \r \t and \uXXXX (surrogate pairs become one UTF-8 sequence; a lone surrogate becomes
 * U+FFFD).  Returns the full decoded length, or -1 if v is not a well-formed string. */
static inline int sp_json_decode_string(const char *v, char *out, size_t cap) {
    if (v == NULL || *v != '"') return -1;
    size_t o = 0;
#define SP__OUT(c) do { if (o + 1 < cap) out[o] = (char)(c); o++; } while (0)
    const char *p = v + 1;
    for (;;) {
        unsigned char c = (unsigned char)*p;
        if (c == '\0') return -1;
        if (c == '"') break;
        if (c != '\\') {
            SP__OUT(c);
            p++;
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
        case '"': SP__OUT('"'); break;
        case '\\': SP__OUT('\\'); break;
        case '/': SP__OUT('/'); break;
        case 'b': SP__OUT('\b'); break;
        case 'f': SP__OUT('\f'); break;
        case 'n': SP__OUT('\n'); break;
        case 'r': SP__OUT('\r'); break;
        case 't': SP__OUT('\t'); break;
        case 'u': {
            uint32_t cp;
            if (sp__hex4(p, &cp) != 0) return -1;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p[0] == '\\' && p[1] == 'u' && sp__hex4(p + 2, &lo) == 0 && lo >= 0xDC00 &&
                    lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            /* UTF-8 encode; emit the sequence only if it fits whole */
            unsigned char u[4];
            size_t ul;
            if (cp < 0x80) { u[0] = (unsigned char)cp; ul = 1; }
            else if (cp < 0x800) {
                u[0] = (unsigned char)(0xC0 | (cp >> 6));
                u[1] = (unsigned char)(0x80 | (cp & 0x3F));
                ul = 2;
            } else if (cp < 0x10000) {
                u[0] = (unsigned char)(0xE0 | (cp >> 12));
                u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                u[2] = (unsigned char)(0x80 | (cp & 0x3F));
                ul = 3;
            } else {
                u[0] = (unsigned char)(0xF0 | (cp >> 18));
                u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                u[3] = (unsigned char)(0x80 | (cp & 0x3F));
                ul = 4;
            }
            if (o + ul < cap) memcpy(out + o, u, ul);
            else if (o + 1 < cap) cap = o + 1; /* stop writing: no partial sequences */
            o += ul;
            break;
        }
        default:
            return -1;
        }
    }
#undef SP__OUT
    if (cap > 0) out[o < cap ? o : cap - 1] = '\0';
    return (int)o;
}

/* Find string member `key` and decode it into out[0..cap).  Returns the full decoded
 * length (>= cap means truncated), or -1 if missing or not a string. */
static inline int sp_json_get_string(const char *json, const char *key, char *out, size_t cap) {
    const char *v = sp_json_find(json, key);
    if (v == NULL || *v != '"') {
        if (cap > 0 && out) out[0] = '\0';
        return -1;
    }
    return sp_json_decode_string(v, out, cap);
}

/* Find integer member `key`.  Returns 0 and stores it, or -1 if missing / not a number
 * (a fractional part is ignored). */
static inline int sp_json_get_int(const char *json, const char *key, int64_t *out) {
    const char *v = sp_json_find(json, key);
    if (v == NULL) return -1;
    int neg = 0;
    if (*v == '-') {
        neg = 1;
        v++;
    }
    if (*v < '0' || *v > '9') return -1;
    int64_t x = 0;
    while (*v >= '0' && *v <= '9') x = x * 10 + (*v++ - '0');
    if (out) *out = neg ? -x : x;
    return 0;
}

/* Find boolean member `key`: 1 true, 0 false, -1 missing or not a boolean. */
static inline int sp_json_get_bool(const char *json, const char *key) {
    const char *v = sp_json_find(json, key);
    if (v == NULL) return -1;
    if (strncmp(v, "true", 4) == 0) return 1;
    if (strncmp(v, "false", 5) == 0) return 0;
    return -1;
}

/* Iterate over the members of the JSON object at *cursor (start with *cursor = the text,
 * e.g. "{\"a\":1,\"b\":\"x\"}").  Each call stores the raw key (without quotes, not
 * unescaped) and the raw value text with their lengths, advances *cursor and returns 1;
 * it returns 0 at the end of the object and -1 on malformed input. */
static inline int sp_json_object_next(const char **cursor, const char **key, size_t *key_len,
                                      const char **value, size_t *value_len) {
    const char *p = sp__json_ws(*cursor);
    if (*p == '{') p = sp__json_ws(p + 1);
    else if (*p == ',') p = sp__json_ws(p + 1);
    if (*p == '}') {
        *cursor = p;
        return 0;
    }
    if (*p != '"') return -1;
    const char *kend = sp__json_str_end(p);
    if (kend == NULL) return -1;
    const char *q = sp__json_ws(kend);
    if (*q != ':') return -1;
    const char *v = sp__json_ws(q + 1);
    size_t vl = sp_json_value_len(v);
    if (vl == 0) return -1;
    *key = p + 1;
    *key_len = (size_t)(kend - p - 2);
    *value = v;
    *value_len = vl;
    p = sp__json_ws(v + vl);
    if (*p != ',' && *p != '}') return -1;
    *cursor = p;
    return 1;
}

/* 1 if member "type" is exactly `type`, else 0. */
static inline int sp_json_type_is(const char *json, const char *type) {
    char buf[128];
    int n = sp_json_get_string(json, "type", buf, sizeof buf);
    return n >= 0 && (size_t)n < sizeof buf && strcmp(buf, type) == 0;
}

/* ==================================================================================== */
/* 7. stdio redirection                                                                 */
/* ==================================================================================== */

#if !defined(SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG) && !defined(SPEAR_REDIRECT_STDIO_TO_LOG) && \
    (defined(__wasm__) || defined(__wasi__))
#define SPEAR_REDIRECT_STDIO_TO_LOG 1
#endif

#if defined(SPEAR_REDIRECT_STDIO_TO_LOG) && !defined(SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG)
#undef printf
#undef fprintf
#undef puts
#define printf(...) sp_infof(__VA_ARGS__)
#define fprintf(stream, ...) sp_fprintf((stream), __VA_ARGS__)
#define puts(s) sp_puts_log(s)
#endif

#ifdef __cplusplus
}
#endif

#endif /* SPEAR_H */
