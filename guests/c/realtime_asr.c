/*
 * realtime_asr -- stream a microphone into a realtime-ASR fd with one epoll loop.
 *
 * The single-threaded event loop every SPEAR guest is built around:
 *
 *   mic fd  --EPOLLIN-->  mic_read  -->  rtasr_write   (one frame held back on -EAGAIN)
 *   rtasr fd --EPOLLIN--> rtasr_read until -EAGAIN --> print deltas / transcripts
 *   rtasr fd --EPOLLOUT-> retry the held frame (OUT is in the interest mask only then)
 *
 * Flow control: when rtasr_write answers -EAGAIN the frame is kept as the ONE pending
 * frame, EPOLLOUT is added to the rtasr interest (EPOLL_CTL_MOD) and EPOLLIN is removed
 * from the mic interest (the host keeps queueing frames and drops the oldest if its
 * queue overflows: "dropped" in the summary).  When EPOLLOUT comes back the frame is
 * written and the masks are restored.  Because epoll is level-triggered, leaving a bit in
 * an interest mask that we are not going to act on would make every wait return at once.
 *
 * End of input: mic EPOLLHUP (e.g. the end of a file source), or --max-frames.  The frames
 * still queued in the mic are sent, then FLUSH (commit) is sent if the segmentation is
 * manual or client_commit, then a no-op session.update as a barrier (the server answers
 * in order, so its reply means every commit and VAD decision for the audio sent has been
 * reported), and events are read until the barrier is answered, every committed item got its
 * `completed` event (and, under server VAD, no speech segment is open) or no event has
 * arrived for the drain time.  EPOLLERR on either fd ends the run with an error.
 *
 * stdout, one line each (text has CR/LF replaced by spaces):
 *   config backend=<b> model=<m|-> transport=<t> drain_ms=<n> max_frames=<n> flush_at_end=<m>
 *   param <key>=<json> rc=<n>
 *   segmentation <json>
 *   started
 *   delta <item_id|->: <text>
 *   completed <item_id|->: <text>
 *   failed <item_id|->: <message>
 *   committed <item_id|->
 *   speech_started <item_id|->
 *   speech_stopped <item_id|->
 *   error_event: <message>
 *   event <type>
 *   mic_end reason=<hup|eof|max_frames> frames=<n>
 *   flush rc=<n>
 *   barrier   (the server answered the end-of-input session.update)
 *   drain_timeout pending_items=<n> speech_open=<0|1> barrier_await=<0|1>
 *   error: <what> rc=<n>
 *   status rtasr: <json>
 *   status mic: <json>
 *   summary: frames=N bytes=N events=N completed=N eagain=N dropped=N dropped_events=N outwaits=N drain_timeout=0|1 exit=N
 *     frames/bytes: written to rtasr; events: rtasr events read; completed: completed
 *     transcripts; eagain: every -EAGAIN from rtasr_write/FLUSH (retries included);
 *     outwaits: how many times a frame (or the FLUSH) had to wait for EPOLLOUT;
 *     dropped: the mic's dropped_frames (host side, -1 if unknown); dropped_events:
 *     the rtasr fd's dropped_events.
 *
 * Configuration (flags override environment):
 *   --backend X        SPEAR_BACKEND       default "local"
 *   --model X          SPEAR_MODEL         default: not set (the backend's model)
 *   --transport X      SPEAR_TRANSPORT     default "websocket"
 *   --segmentation J   SPEAR_SEGMENTATION  default: not set (host default, server VAD)
 *   --mic J            SPEAR_MIC           default {"sample_rate_hz":24000,"channels":1,
 *                                          "format":"pcm16","frame_ms":20,"source":"device"}
 *   --drain-ms N       SPEAR_DRAIN_MS      default 5000
 *   --settle-ms N      SPEAR_SETTLE_MS     default 500 (quiet time after the send queue
 *                                          empties before a server-VAD run may end)
 *   --max-frames N     SPEAR_MAX_FRAMES    default 0 (no limit)
 *   --flush-at-end M   SPEAR_FLUSH_AT_END  auto (default: FLUSH at the end only for manual /
 *                                          client_commit), always (also under server VAD,
 *                                          to get the trailing segment), never
 *   --param K=JSON     SPEAR_RTASR_PARAMS  extra rtasr SET_PARAMs; the flag (repeatable)
 *                                          takes a key and a raw JSON value, e.g.
 *                                          --param max_send_queue_bytes=4800; the variable
 *                                          a JSON object, e.g. {"stub_event_interval_ms":50}
 *
 * Exit status: 0 clean end (also after a drain timeout), 1 setup failed, 2 bad usage,
 * 3 EPOLLERR or an I/O error while streaming.
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

#define DEFAULT_MIC \
    "{\"sample_rate_hz\":24000,\"channels\":1,\"format\":\"pcm16\",\"frame_ms\":20,\"source\":\"device\"}"

enum { SEG_SERVER_VAD, SEG_MANUAL, SEG_CLIENT_COMMIT };
enum { MIC_LIVE, MIC_EOF, MIC_DONE };

#define MAX_ITEMS 64
#define ITEM_ID_MAX 96
#define MAX_EVENTS 8

#define MAX_PARAMS 16

static struct {
    const char *backend, *model, *transport, *segmentation, *mic, *params_json, *flush_at_end;
    long drain_ms, settle_ms, max_frames;
    const char *param[MAX_PARAMS]; /* "key=json" from --param */
    int n_params;
} cfg;

static int32_t ep = -1, mic = -1, asr = -1;
static uint32_t asr_mask, mic_mask;
static int mic_watched;

static char *frame_buf, *ev_buf, *pending;
static uint32_t frame_cap, ev_cap, pending_cap;
static int32_t pending_len;
static int has_pending, out_backoff;

static int mic_state = MIC_LIVE;
static int strategy = SEG_SERVER_VAD;
static int stub_mode, openai_events, need_flush, speech_open;
#define BARRIER_ID "spear_barrier"
static char items[MAX_ITEMS][ITEM_ID_MAX];
static int n_items;

static long long frames, frames_read, bytes, events, completed, eagain, outwaits;
static int64_t drain_deadline, sendq_empty_at;
static int drain_timeout, exit_code, finished;
/* end of input: a no-op session.update sent after the last audio; the server answers in
 * order, so its reply means every earlier commit and VAD decision has been reported. */
static int need_barrier, barrier_await, updates_seen, barrier_target;
static int64_t mic_dropped = -1;

/* ------------------------------------------------------------------------------------ */

static void usage(void) {
    printf("usage: realtime_asr [--backend X] [--model X] [--transport X] [--segmentation JSON]\n"
           "                    [--mic JSON] [--drain-ms N] [--settle-ms N] [--max-frames N]\n"
           "                    [--param KEY=JSON]... [--flush-at-end auto|always|never]\n"
           "environment: SPEAR_BACKEND SPEAR_MODEL SPEAR_TRANSPORT SPEAR_SEGMENTATION SPEAR_MIC\n"
           "             SPEAR_DRAIN_MS SPEAR_SETTLE_MS SPEAR_MAX_FRAMES SPEAR_RTASR_PARAMS\n"
           "             SPEAR_FLUSH_AT_END\n");
}

static const char *env_or(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : dflt;
}

static int parse_long(const char *s, long *out) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 0) return -1;
    *out = v;
    return 0;
}

static int configure(int argc, char **argv) {
    cfg.backend = env_or("SPEAR_BACKEND", "local");
    cfg.model = env_or("SPEAR_MODEL", NULL);
    cfg.transport = env_or("SPEAR_TRANSPORT", "websocket");
    cfg.segmentation = env_or("SPEAR_SEGMENTATION", NULL);
    cfg.mic = env_or("SPEAR_MIC", DEFAULT_MIC);
    cfg.params_json = env_or("SPEAR_RTASR_PARAMS", NULL);
    cfg.flush_at_end = env_or("SPEAR_FLUSH_AT_END", "auto");
    cfg.drain_ms = 5000;
    cfg.settle_ms = 500;
    cfg.max_frames = 0;
    const char *num_env[3] = {env_or("SPEAR_DRAIN_MS", NULL), env_or("SPEAR_SETTLE_MS", NULL),
                              env_or("SPEAR_MAX_FRAMES", NULL)};
    long *num_dst[3] = {&cfg.drain_ms, &cfg.settle_ms, &cfg.max_frames};
    for (int i = 0; i < 3; i++) {
        if (num_env[i] != NULL && parse_long(num_env[i], num_dst[i]) != 0) {
            printf("error: bad number in environment: %s rc=-22\n", num_env[i]);
            return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage();
            exit(0);
        }
        static const char *const names[] = {"--backend", "--model", "--transport",
                                            "--segmentation", "--mic", "--drain-ms",
                                            "--settle-ms", "--max-frames", "--param",
                                            "--flush-at-end"};
        const char *value = NULL;
        int which = -1;
        for (int k = 0; k < 10; k++) {
            size_t n = strlen(names[k]);
            if (strncmp(arg, names[k], n) != 0) continue;
            if (arg[n] == '=') value = arg + n + 1;
            else if (arg[n] == '\0' && i + 1 < argc) value = argv[++i];
            else continue;
            which = k;
            break;
        }
        if (which < 0) {
            printf("error: unknown or incomplete argument %s rc=-22\n", arg);
            usage();
            return -1;
        }
        switch (which) {
        case 0: cfg.backend = value; break;
        case 1: cfg.model = value[0] ? value : NULL; break;
        case 2: cfg.transport = value; break;
        case 3: cfg.segmentation = value[0] ? value : NULL; break;
        case 4: cfg.mic = value; break;
        case 8:
            if (cfg.n_params == MAX_PARAMS || strchr(value, '=') == NULL || value[0] == '=') {
                printf("error: bad --param %s (KEY=JSON, at most %d) rc=-22\n", value, MAX_PARAMS);
                return -1;
            }
            cfg.param[cfg.n_params++] = value;
            break;
        case 9: cfg.flush_at_end = value; break;
        default:
            if (parse_long(value, num_dst[which - 5]) != 0) {
                printf("error: bad number for %s: %s rc=-22\n", names[which], value);
                return -1;
            }
        }
    }
    if (strcmp(cfg.flush_at_end, "auto") != 0 && strcmp(cfg.flush_at_end, "always") != 0 &&
        strcmp(cfg.flush_at_end, "never") != 0) {
        printf("error: --flush-at-end must be auto, always or never rc=-22\n");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------ */

static void print_status(const char *what) {
    uint32_t len = 0;
    char *s = NULL;
    if (strcmp(what, "mic") == 0) s = mic >= 0 ? (char *)sp_mic_get_status_alloc(mic, &len) : NULL;
    else s = asr >= 0 ? sp_rtasr_get_status_alloc(asr, &len) : NULL;
    printf("status %s: %s\n", what, s ? s : "null");
    free(s);
}

static void fail(const char *what, int32_t rc, int code) {
    printf("error: %s rc=%d\n", what, (int)rc);
    print_status("rtasr");
    print_status("mic");
    if (exit_code == 0) exit_code = code;
    finished = 1;
}

/* Print `<kind> <item>: <text>` with line breaks flattened. */
static void print_text_line(const char *kind, const char *item, const char *text) {
    printf("%s %s: ", kind, item[0] ? item : "-");
    for (const char *p = text; *p; p++) putchar(*p == '\n' || *p == '\r' ? ' ' : *p);
    putchar('\n');
    fflush(stdout);
}

/* Decode string member `key` of `ev` into a malloc'd string ("" if missing). */
static char *get_text(const char *ev, const char *key) {
    size_t cap = strlen(ev) + 1; /* decoded text is never longer than the document */
    char *out = (char *)malloc(cap);
    if (out == NULL) return NULL;
    if (sp_json_get_string(ev, key, out, cap) < 0) out[0] = '\0';
    return out;
}

static void add_item(const char *id) {
    if (id[0] == '\0') return;
    for (int i = 0; i < n_items; i++)
        if (strcmp(items[i], id) == 0) return;
    if (n_items == MAX_ITEMS) { /* forget the oldest */
        memmove(items[0], items[1], sizeof items[0] * (MAX_ITEMS - 1));
        n_items--;
    }
    snprintf(items[n_items++], ITEM_ID_MAX, "%s", id);
}

static void remove_item(const char *id) {
    for (int i = 0; i < n_items; i++) {
        if (strcmp(items[i], id) != 0) continue;
        memmove(items[i], items[i + 1], sizeof items[0] * (size_t)(n_items - i - 1));
        n_items--;
        return;
    }
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void handle_event(const char *ev) {
    char type[160], item[ITEM_ID_MAX];
    events++;
    if (sp_json_get_string(ev, "type", type, sizeof type) < 0) strcpy(type, "?");
    if (sp_json_get_string(ev, "item_id", item, sizeof item) < 0) item[0] = '\0';
    /* the reference stub's events are "transcription.*"; OpenAI-shaped ones are not */
    if (strncmp(type, "transcription.", 14) == 0) stub_mode = 1;
    else if (strncmp(type, "session.", 8) == 0 || strncmp(type, "input_audio_buffer.", 19) == 0 ||
             strncmp(type, "conversation.", 13) == 0)
        openai_events = 1;

    if (ends_with(type, "transcription.delta")) {
        char *text = get_text(ev, sp_json_find(ev, "delta") ? "delta" : "text");
        if (text) print_text_line("delta", item, text);
        free(text);
    } else if (ends_with(type, "transcription.completed")) {
        char *text = get_text(ev, sp_json_find(ev, "transcript") ? "transcript" : "text");
        if (text) print_text_line("completed", item, text);
        free(text);
        completed++;
        remove_item(item);
    } else if (ends_with(type, "transcription.failed")) {
        char *msg = get_text(ev, "message");
        if (msg) print_text_line("failed", item, msg);
        free(msg);
        remove_item(item);
    } else if (strcmp(type, "input_audio_buffer.committed") == 0) {
        printf("committed %s\n", item[0] ? item : "-");
        add_item(item);
        speech_open = 0;
    } else if (strcmp(type, "input_audio_buffer.speech_started") == 0) {
        printf("speech_started %s\n", item[0] ? item : "-");
        speech_open = 1;
    } else if (strcmp(type, "input_audio_buffer.speech_stopped") == 0) {
        /* the segment stays open until its committed event */
        printf("speech_stopped %s\n", item[0] ? item : "-");
    } else if (strcmp(type, "session.updated") == 0 ||
               strcmp(type, "transcription_session.updated") == 0) {
        /* replies come in order: the WebSocket transport's own update at connect first */
        updates_seen++;
        if (barrier_await && updates_seen >= barrier_target) {
            barrier_await = 0;
            printf("barrier\n");
        } else {
            printf("event %s\n", type);
        }
    } else if (strcmp(type, "error") == 0) {
        char *msg = get_text(ev, "message");
        /* a server that does not know session.update echoes our event_id in error{} */
        if (barrier_await && strstr(ev, "\"event_id\":\"" BARRIER_ID "\"") != NULL) {
            barrier_await = 0;
            printf("barrier\n");
        }
        printf("error_event: ");
        for (const char *p = msg ? msg : ""; *p; p++) putchar(*p == '\n' || *p == '\r' ? ' ' : *p);
        putchar('\n');
        free(msg);
    } else {
        printf("event %s\n", type);
    }
    fflush(stdout);
}

/* Read rtasr events until -EAGAIN. */
static void drain_events(void) {
    for (;;) {
        int32_t rc = sp_rtasr_read_buf(asr, &ev_buf, &ev_cap);
        if (rc == -SPEAR_EAGAIN) return;
        if (rc < 0) {
            fail("rtasr_read", rc, 3);
            return;
        }
        handle_event(ev_buf);
        /* While draining, the timeout counts from the last event: a backend that is
         * still working through audio sent faster than real time is not cut off. */
        if (drain_deadline) drain_deadline = sp_time_now_ms() + cfg.drain_ms;
    }
}

/* Set the interest masks that match the current state (MOD only on change). */
static void update_interest(void) {
    const uint32_t base = SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP;
    uint32_t want = base;
    if ((has_pending || need_flush || need_barrier) && !out_backoff) want |= SPEAR_EPOLLOUT;
    if (want != asr_mask) {
        int32_t rc = sp_ep_ctl(ep, SPEAR_EPOLL_CTL_MOD, asr, (int32_t)want);
        if (rc < 0) {
            fail("epoll_ctl(MOD rtasr)", rc, 3);
            return;
        }
        asr_mask = want;
    }
    if (mic_watched) {
        uint32_t mwant = SPEAR_EPOLLERR | SPEAR_EPOLLHUP | (has_pending ? 0 : SPEAR_EPOLLIN);
        if (mwant != mic_mask) {
            int32_t rc = sp_ep_ctl(ep, SPEAR_EPOLL_CTL_MOD, mic, (int32_t)mwant);
            if (rc < 0) {
                fail("epoll_ctl(MOD mic)", rc, 3);
                return;
            }
            mic_mask = mwant;
        }
    }
}

static void unwatch_mic(void) {
    if (!mic_watched) return;
    sp_ep_ctl(ep, SPEAR_EPOLL_CTL_DEL, mic, 0);
    mic_watched = 0;
}

/* Remember the host's dropped_frames count of the mic (it is gone once closed). */
static void snapshot_mic_dropped(void) {
    uint32_t len = 0;
    char *st = (char *)sp_mic_get_status_alloc(mic, &len);
    if (st != NULL) {
        sp_json_get_int(st, "dropped_frames", &mic_dropped);
        free(st);
    }
}

/* Does GET_STATUS report this transport ([EXT] key "transport")? */
static int transport_is(const char *name) {
    uint32_t len = 0;
    char *st = sp_rtasr_get_status_alloc(asr, &len);
    char tr[32];
    int yes = st != NULL && sp_json_get_string(st, "transport", tr, sizeof tr) >= 0 &&
              strcmp(tr, name) == 0;
    free(st);
    return yes;
}

/* The microphone is finished: close it and start draining. */
static void mic_done(const char *reason) {
    if (mic_state == MIC_DONE) return;
    mic_state = MIC_DONE;
    unwatch_mic();
    snapshot_mic_dropped();
    sp_mic_close(mic);
    printf("mic_end reason=%s frames=%lld\n", reason, frames_read);
    /* A stub transport (GET_STATUS "transport" [EXT]) that has not sent OpenAI-shaped
     * events is the reference stub: it never commits, so do not wait for transcripts. */
    if (!openai_events && transport_is("stub")) stub_mode = 1;
    int flush = strcmp(cfg.flush_at_end, "always") == 0 ||
                (strcmp(cfg.flush_at_end, "auto") == 0 &&
                 (strategy == SEG_MANUAL || strategy == SEG_CLIENT_COMMIT));
    if (flush && !stub_mode && bytes + (has_pending ? pending_len : 0) > 0) need_flush = 1;
    if (!stub_mode) need_barrier = 1;
    drain_deadline = sp_time_now_ms() + cfg.drain_ms;
    fflush(stdout);
}

/* Write one frame; keep it as the pending frame on -EAGAIN. */
static void send_frame(const char *buf, int32_t len) {
    int32_t w = sp_rtasr_write(asr, SP_PTR(buf), len);
    if (w == -SPEAR_EAGAIN) {
        eagain++;
        outwaits++; /* this frame now waits for EPOLLOUT */
        if (pending_cap < (uint32_t)len) {
            char *np = (char *)realloc(pending, (size_t)len);
            if (np == NULL) {
                fail("out of memory", -SPEAR_ENOMEM, 3);
                return;
            }
            pending = np;
            pending_cap = (uint32_t)len;
        }
        memcpy(pending, buf, (size_t)len);
        pending_len = len;
        has_pending = 1;
        return;
    }
    if (w < 0) {
        fail("rtasr_write", w, 3);
        return;
    }
    frames++;
    bytes += len;
}

/* Move frames from the mic to rtasr until the mic is empty or rtasr is full. */
static void pump_mic(void) {
    while (!has_pending && !finished && mic_state != MIC_DONE) {
        if (cfg.max_frames > 0 && frames_read >= cfg.max_frames) {
            mic_done("max_frames");
            break;
        }
        int32_t rc = sp_mic_read_buf(mic, &frame_buf, &frame_cap);
        if (rc == -SPEAR_EAGAIN || (rc == -SPEAR_EBADF && mic_state == MIC_EOF)) {
            if (mic_state == MIC_EOF) mic_done(rc == -SPEAR_EAGAIN ? "eof" : "hup");
            break;
        }
        if (rc < 0) {
            fail("mic_read", rc, 3);
            break;
        }
        frames_read++;
        send_frame(frame_buf, rc);
    }
}

/* rtasr reported EPOLLOUT: retry the pending frame, then a wanted FLUSH. */
static void on_writable(void) {
    if (has_pending) {
        int32_t w = sp_rtasr_write(asr, SP_PTR(pending), pending_len);
        if (w == -SPEAR_EAGAIN) {
            /* OUT means "some room", not "room for this frame": back off briefly */
            eagain++;
            out_backoff = 1;
            return;
        }
        if (w < 0) {
            fail("rtasr_write", w, 3);
            return;
        }
        has_pending = 0;
        frames++;
        bytes += pending_len;
        if (mic_state != MIC_DONE) pump_mic();
    }
    if (!has_pending && need_flush && !finished) {
        int32_t rc = sp_rtasr_flush(asr);
        if (rc == -SPEAR_EAGAIN) {
            eagain++;
            outwaits++;
            out_backoff = 1;
            return;
        }
        printf("flush rc=%d\n", (int)rc);
        fflush(stdout);
        if (rc < 0) {
            fail("rtasr flush", rc, 3);
            return;
        }
        need_flush = 0;
    }
    if (!has_pending && !need_flush && need_barrier && !finished) {
        static const char barrier[] =
            "{\"type\":\"session.update\",\"event_id\":\"" BARRIER_ID "\","
            "\"session\":{\"type\":\"transcription\"}}";
        int32_t rc = sp_rtasr_send_event_json(asr, barrier, sizeof barrier - 1);
        if (rc == -SPEAR_EAGAIN) {
            eagain++;
            out_backoff = 1;
            return;
        }
        if (rc < 0) {
            fail("rtasr send_event (barrier)", rc, 3);
            return;
        }
        need_barrier = 0;
        barrier_await = 1;
        barrier_target = 1 + (transport_is("websocket") ? 1 : 0);
    }
}

/* Drain phase: is everything we wait for in? */
static int drain_complete(int64_t now) {
    if (has_pending || need_flush || need_barrier) return 0;
    uint32_t len = 0;
    char *st = sp_rtasr_get_status_alloc(asr, &len);
    int64_t sendq = 0;
    if (st != NULL) {
        if (sp_json_get_int(st, "send_queue_bytes", &sendq) != 0) sendq = 0;
        free(st);
    }
    if (sendq > 0) {
        sendq_empty_at = 0;
        return 0;
    }
    if (sendq_empty_at == 0) sendq_empty_at = now;
    if (stub_mode) return 1;
    if (barrier_await || n_items > 0 || speech_open) return 0;
    return now - sendq_empty_at >= cfg.settle_ms;
}

/* One extra SET_PARAM: key (not NUL-terminated) and a raw JSON value. */
static int set_param_raw(const char *key, size_t klen, const char *value, size_t vlen) {
    char *k = (char *)malloc(klen + 1), *v = (char *)malloc(vlen + 1);
    int32_t rc = -SPEAR_ENOMEM;
    if (k != NULL && v != NULL) {
        memcpy(k, key, klen);
        k[klen] = '\0';
        memcpy(v, value, vlen);
        v[vlen] = '\0';
        rc = sp_rtasr_set_param_value(asr, k, v);
        printf("param %s=%s rc=%d\n", k, v, (int)rc);
    }
    free(k);
    free(v);
    if (rc < 0) {
        fail("rtasr set param", rc, 1);
        return -1;
    }
    return 0;
}

/* SPEAR_RTASR_PARAMS (a JSON object), then every --param KEY=JSON. */
static int apply_params(void) {
    if (cfg.params_json != NULL) {
        const char *cur = cfg.params_json, *key, *val;
        size_t klen, vlen;
        int r;
        while ((r = sp_json_object_next(&cur, &key, &klen, &val, &vlen)) == 1)
            if (set_param_raw(key, klen, val, vlen) != 0) return -1;
        if (r < 0) {
            fail("SPEAR_RTASR_PARAMS is not a JSON object", -SPEAR_EINVAL, 1);
            return -1;
        }
    }
    for (int i = 0; i < cfg.n_params; i++) {
        const char *eq = strchr(cfg.param[i], '=');
        if (set_param_raw(cfg.param[i], (size_t)(eq - cfg.param[i]), eq + 1, strlen(eq + 1)) != 0)
            return -1;
    }
    return 0;
}

static int setup(void) {
    int32_t rc;
    ep = sp_ep_create();
    mic = sp_mic_create();
    asr = sp_rtasr_create();

    asr_mask = SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP;
    mic_mask = asr_mask;
    if ((rc = sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, mic, (int32_t)mic_mask)) < 0 ||
        (rc = sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, asr, (int32_t)asr_mask)) < 0) {
        fail("epoll_ctl(ADD)", rc, 1);
        return -1;
    }
    mic_watched = 1;

    if ((rc = sp_rtasr_set_param_string_escaped(asr, "transport", cfg.transport)) < 0) {
        fail("rtasr set transport", rc, 1);
        return -1;
    }
    if (cfg.backend[0] && (rc = sp_rtasr_set_param_string_escaped(asr, "backend", cfg.backend)) < 0) {
        fail("rtasr set backend", rc, 1);
        return -1;
    }
    if (cfg.model && (rc = sp_rtasr_set_param_string_escaped(asr, "model", cfg.model)) < 0) {
        fail("rtasr set model", rc, 1);
        return -1;
    }
    if (apply_params() != 0) return -1;
    if (cfg.segmentation &&
        (rc = sp_rtasr_set_segmentation_json(asr, cfg.segmentation, strlen(cfg.segmentation))) < 0) {
        fail("rtasr set segmentation", rc, 1);
        return -1;
    }
    uint32_t len = 0;
    char *seg = sp_rtasr_get_segmentation_alloc(asr, &len);
    if (seg != NULL) {
        char strat[32];
        if (sp_json_get_string(seg, "strategy", strat, sizeof strat) >= 0) {
            if (strcmp(strat, "manual") == 0) strategy = SEG_MANUAL;
            else if (strcmp(strat, "client_commit") == 0) strategy = SEG_CLIENT_COMMIT;
        }
        printf("segmentation %s\n", seg);
        free(seg);
    }

    if ((rc = sp_mic_set_param_json(mic, cfg.mic, strlen(cfg.mic))) < 0) {
        fail("mic set_param", rc, 1);
        return -1;
    }
    if ((rc = sp_rtasr_connect(asr)) < 0) {
        fail("rtasr connect", rc, 1);
        return -1;
    }
    printf("started\n");
    fflush(stdout);
    return 0;
}

static void finish(void) {
    int64_t dropped_events = -1;
    uint32_t len = 0;
    if (mic_state != MIC_DONE) snapshot_mic_dropped();
    char *st = sp_rtasr_get_status_alloc(asr, &len);
    if (st != NULL) {
        sp_json_get_int(st, "dropped_events", &dropped_events);
        free(st);
    }
    sp_rtasr_close(asr);
    sp_mic_close(mic);
    sp_ep_close(ep);
    printf("summary: frames=%lld bytes=%lld events=%lld completed=%lld eagain=%lld dropped=%lld "
           "dropped_events=%lld outwaits=%lld drain_timeout=%d exit=%d\n",
           frames, bytes, events, completed, eagain, (long long)mic_dropped,
           (long long)dropped_events, outwaits, drain_timeout, exit_code);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (configure(argc, argv) != 0) return 2;
    printf("config backend=%s model=%s transport=%s drain_ms=%ld max_frames=%ld flush_at_end=%s\n",
           cfg.backend, cfg.model ? cfg.model : "-", cfg.transport, cfg.drain_ms, cfg.max_frames,
           cfg.flush_at_end);
    if (setup() != 0) {
        finish();
        return exit_code ? exit_code : 1;
    }

    sp_epoll_event_t evs[MAX_EVENTS];
    while (!finished) {
        int32_t timeout = 1000;
        int64_t now = sp_time_now_ms();
        if (mic_state == MIC_DONE) {
            if (drain_complete(now)) break;
            if (now >= drain_deadline) {
                drain_timeout = 1;
                printf("drain_timeout pending_items=%d speech_open=%d barrier_await=%d\n", n_items,
                       speech_open, barrier_await);
                break;
            }
            int64_t left = drain_deadline - now;
            timeout = left < 20 ? (int32_t)left : 20;
        }
        if (out_backoff) timeout = 5;
        update_interest();
        if (finished) break;

        int32_t n = sp_ep_wait_events(ep, evs, MAX_EVENTS, timeout);
        if (n < 0) {
            fail("epoll_wait", n, 3);
            break;
        }
        if (out_backoff) {
            out_backoff = 0; /* restore OUT interest, and retry once now */
            if (has_pending || need_flush || need_barrier) on_writable();
        }
        for (int32_t i = 0; i < n && !finished; i++) {
            int32_t fd = evs[i].fd;
            uint32_t e = evs[i].events;
            if (fd == asr) {
                if (e & SPEAR_EPOLLIN) drain_events();
                if (finished) break;
                if (e & SPEAR_EPOLLERR) {
                    fail("rtasr EPOLLERR", -SPEAR_EIO, 3);
                    break;
                }
                if (e & SPEAR_EPOLLHUP) {
                    printf("rtasr_hup\n");
                    print_status("rtasr");
                    finished = 1;
                    break;
                }
                if ((e & SPEAR_EPOLLOUT) && (has_pending || need_flush || need_barrier)) on_writable();
            } else if (fd == mic && mic_watched) {
                if (e & SPEAR_EPOLLERR) {
                    fail("mic EPOLLERR", -SPEAR_EIO, 3);
                    break;
                }
                if (e & SPEAR_EPOLLHUP) {
                    /* end of input: stop watching, send what is still queued */
                    mic_state = MIC_EOF;
                    unwatch_mic();
                }
                if ((e & (SPEAR_EPOLLIN | SPEAR_EPOLLHUP)) && !has_pending) pump_mic();
            }
        }
        /* frames left after a HUP are read here once the pending frame is out */
        if (mic_state == MIC_EOF && !has_pending && !finished) pump_mic();
    }
    finish();
    free(frame_buf);
    free(ev_buf);
    free(pending);
    return exit_code;
}
