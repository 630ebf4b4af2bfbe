/*
 * mic_rtasr -- microphone to realtime ASR, the SPEAR reference sample's behaviour.
 *
 * Re-written for spear_lab from the description of the reference sample
 * (docs/abi.md §1.1); it makes the same hostcalls in the same order:
 *
 *   1. create an epoll, a mic fd and an rtasr fd (1000, 1001, 1002 on a fresh instance);
 *   2. watch both with EPOLLIN|EPOLLERR|EPOLLHUP (0x19);
 *   3. mic SET_PARAM with the 115-byte device config (no fallback to the stub); on failure
 *      print the mic status and exit with status 1;
 *   4. rtasr params transport=websocket, backend=SP_RTASR_BACKEND, model=SP_RTASR_MODEL;
 *   5. segmentation: server VAD, 600 ms silence, flush_on_close;
 *   6. CONNECT and print "mic_rtasr started";
 *   7. loop: wait (64 records, 2000 ms); HUP or ERR of either fd ends the loop; a mic
 *      frame is written to rtasr (-EAGAIN drops it); one rtasr event is read per report.
 *
 * Status lines go through printf, i.e. to the host log (the SDK redirects stdio); the
 * transcript text goes to WASI stdout with fwrite/fputc: delta text is appended as it
 * arrives and a newline ends each completed transcript.
 */
#include "spear.h"

#ifndef SP_RTASR_BACKEND
#define SP_RTASR_BACKEND "openai-realtime-asr"
#endif
#ifndef SP_RTASR_MODEL
#define SP_RTASR_MODEL "gpt-4o-mini-transcribe"
#endif

#define MAX_EVENTS 64
#define WAIT_TIMEOUT_MS 2000

static const char MIC_PARAMS[] =
    "{\"sample_rate_hz\":24000,\"channels\":1,\"format\":\"pcm16\",\"frame_ms\":20,"
    "\"source\":\"device\",\"fallback\":{\"to_stub\":false}}";

static const char SEGMENTATION[] =
    "{\"strategy\":\"server_vad\",\"vad\":{\"silence_ms\":600},\"flush_on_close\":true}";

/* Naive field search, as in the reference: needs compact JSON ("name":"value"). */
static const char *find_string_field(const char *json, const char *name, size_t *len) {
    char pattern[64];
    int n = snprintf(pattern, sizeof pattern, "\"%s\":\"", name);
    if (n <= 0 || (size_t)n >= sizeof pattern) return NULL;
    const char *start = strstr(json, pattern);
    if (start == NULL) return NULL;
    start += n;
    const char *p = start;
    while (*p && *p != '"') {
        if (*p == '\\' && p[1] != '\0') p++;
        p++;
    }
    *len = (size_t)(p - start);
    return start;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void print_mic_status(int32_t mic) {
    uint32_t len = 0;
    uint8_t *status = sp_mic_get_status_alloc(mic, &len);
    if (status != NULL) {
        printf("mic status: %s\n", (const char *)status);
        free(status);
    } else {
        printf("mic status unavailable\n");
    }
}

static int warned_stub = 0;

static void handle_rtasr_event(const char *ev, uint32_t len) {
    size_t tlen = 0;
    const char *t = find_string_field(ev, "type", &tlen);
    if (t == NULL) {
        printf("rtasr event without a recognised type (%u bytes)\n", (unsigned)len);
        return;
    }
    char type[128];
    if (tlen >= sizeof type) tlen = sizeof type - 1;
    memcpy(type, t, tlen);
    type[tlen] = '\0';

    if (!warned_stub && strncmp(type, "transcription.", 14) == 0) {
        warned_stub = 1;
        printf("warning: rtasr events of type transcription.* come from the stub transport; "
               "the websocket backend '%s' was not used (check the host's backend "
               "configuration and its API key)\n",
               SP_RTASR_BACKEND);
    }
    if (strstr(type, "transcription") == NULL) printf("rtasr event: %s\n", type);

    static const char *const text_fields[] = {"delta", "transcript", "text"};
    for (size_t i = 0; i < sizeof text_fields / sizeof text_fields[0]; i++) {
        size_t n = 0;
        const char *text = find_string_field(ev, text_fields[i], &n);
        if (text == NULL) continue;
        fwrite(text, 1, n, stdout);
        if (ends_with(type, "completed")) fputc('\n', stdout);
        fflush(stdout);
        break;
    }
}

int main(void) {
    int32_t ep = sp_ep_create();
    int32_t mic = sp_mic_create();
    int32_t asr = sp_rtasr_create();
    int status = 0;

    sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, mic, SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);
    sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, asr, SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);

    int32_t rc = sp_mic_set_param_json(mic, MIC_PARAMS, sizeof MIC_PARAMS - 1);
    if (rc != 0) {
        printf("mic set_param failed: %d\n", (int)rc);
        print_mic_status(mic);
        return 1;
    }

    if ((rc = sp_rtasr_set_param_string(asr, "transport", "websocket")) != 0 ||
        (rc = sp_rtasr_set_param_string(asr, "backend", SP_RTASR_BACKEND)) != 0 ||
        (rc = sp_rtasr_set_param_string(asr, "model", SP_RTASR_MODEL)) != 0) {
        printf("rtasr set_param failed: %d\n", (int)rc);
        status = 1;
        goto out;
    }
    rc = sp_rtasr_set_autoflush_json(asr, SEGMENTATION, sizeof SEGMENTATION - 1);
    if (rc != 0) {
        printf("rtasr segmentation failed: %d\n", (int)rc);
        status = 1;
        goto out;
    }
    rc = sp_rtasr_connect(asr);
    if (rc != 0) {
        printf("rtasr connect failed: %d (set OPENAI_API_KEY for the host)\n", (int)rc);
        status = 1;
        goto out;
    }
    printf("mic_rtasr started\n");

    sp_epoll_event_t events[MAX_EVENTS];
    for (;;) {
        uint32_t cell = sizeof events;
        int32_t n = sp_ep_wait(ep, SP_PTR(events), SP_PTR(&cell), WAIT_TIMEOUT_MS);
        if (n < 0) {
            printf("epoll wait failed: %d\n", (int)n);
            status = 1;
            goto out;
        }
        for (int32_t i = 0; i < n; i++) {
            int32_t fd = events[i].fd;
            uint32_t ev = events[i].events;
            const char *who = fd == mic ? "mic" : "rtasr";
            if (ev & SPEAR_EPOLLHUP) {
                printf("%s hup\n", who);
                goto out;
            }
            if (ev & SPEAR_EPOLLERR) {
                printf("%s err\n", who);
                goto out;
            }
            if (!(ev & SPEAR_EPOLLIN)) continue;
            if (fd == mic) {
                uint32_t len = 0;
                uint8_t *frame = sp_mic_read_alloc(mic, &len);
                if (frame == NULL) continue;
                /* -EAGAIN: the send queue is full and this frame is dropped */
                sp_rtasr_write(asr, SP_PTR(frame), (int32_t)len);
                free(frame);
            } else if (fd == asr) {
                uint32_t len = 0;
                uint8_t *event = sp_rtasr_read_alloc(asr, &len);
                if (event == NULL) continue;
                handle_rtasr_event((const char *)event, len);
                free(event);
            }
        }
    }

out:
    sp_rtasr_close(asr);
    sp_mic_close(mic);
    sp_ep_close(ep);
    return status;
}
