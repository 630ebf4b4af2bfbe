/*
 * asr_transcribe -- a third-party guest written the way the SPEAR reference SDK's samples
 * are: microphone -> realtime ASR, transcripts printed with printf.
 *
 * It uses only the reference SDK's API forms (uint8_t * from the *_alloc helpers, the
 * SPEAR_EP_CTL_* macros, printf redirected to the host log) and asks for the backend by
 * the reference's name, "openai-realtime-asr", which a spear_lab host maps with
 *
 *     spear-lab run asr_transcribe --mic file:SPEECH.wav --route openai-realtime-asr=local
 *
 * Flow: epoll + mic ("device", no stub fallback) + rtasr (websocket, server VAD); every
 * mic frame goes to the rtasr fd (a frame that does not fit is dropped, as in the
 * reference sample); every completed transcript is printed as
 *
 *     transcript: <text>
 *
 * The guest ends, with status 0, on the mic's EPOLLHUP (the end of a file microphone),
 * like the reference sample; errors end it with status 1.
 */
#include "spear.h"

#ifndef ASR_BACKEND
#define ASR_BACKEND "openai-realtime-asr"
#endif
#ifndef ASR_MODEL
#define ASR_MODEL "gpt-4o-mini-transcribe"
#endif

#define WAIT_RECORDS 16
#define WAIT_MS 2000

static const char MIC_CONFIG[] =
    "{\"sample_rate_hz\":24000,\"channels\":1,\"format\":\"pcm16\",\"frame_ms\":20,"
    "\"source\":\"device\",\"fallback\":{\"to_stub\":false}}";
static const char SEGMENTATION[] =
    "{\"strategy\":\"server_vad\",\"vad\":{\"silence_ms\":500},\"flush_on_close\":true}";

static const char COMPLETED[] = "conversation.item.input_audio_transcription.completed";

/* The string value of "name" in compact JSON (naive search, reference style), unescaped
 * into out[0..cap).  Returns its length, or -1 when absent. */
static int string_field(const char *json, const char *name, char *out, size_t cap) {
    char key[64];
    int n = snprintf(key, sizeof key, "\"%s\":\"", name);
    if (n <= 0 || (size_t)n >= sizeof key || cap == 0) return -1;
    const char *p = strstr(json, key);
    if (p == NULL) return -1;
    p += n;
    size_t o = 0;
    while (*p && *p != '"') {
        char c = *p++;
        if (c == '\\' && *p) {
            c = *p++;
            if (c == 'n') c = ' ';
            else if (c == 't') c = ' ';
            else if (c == 'u') { /* keep \uXXXX as '?': this guest prints ASCII */
                for (int i = 0; i < 4 && *p; i++) p++;
                c = '?';
            }
        }
        if (o + 1 < cap) out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}

static int handle_event(const uint8_t *event) {
    const char *json = (const char *)event;
    char type[96];
    if (string_field(json, "type", type, sizeof type) < 0) return 0;
    if (strcmp(type, COMPLETED) == 0) {
        char text[2048];
        if (string_field(json, "transcript", text, sizeof text) >= 0) printf("transcript: %s\n", text);
    } else if (strcmp(type, "error") == 0) {
        char message[512];
        if (string_field(json, "message", message, sizeof message) < 0) strcpy(message, "?");
        printf("backend error: %s\n", message);
    }
    return 0;
}

int main(void) {
    int32_t ep = sp_ep_create();
    int32_t mic = sp_mic_create();
    int32_t asr = sp_rtasr_create();
    int status = 1;

    sp_ep_ctl(ep, SPEAR_EP_CTL_ADD, mic, SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);
    sp_ep_ctl(ep, SPEAR_EP_CTL_ADD, asr, SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);

    int32_t rc = sp_mic_set_param_json(mic, MIC_CONFIG, sizeof MIC_CONFIG - 1);
    if (rc != 0) {
        uint32_t len = 0;
        uint8_t *st = sp_mic_get_status_alloc(mic, &len);
        printf("mic set_param failed: %d status=%s\n", (int)rc, st ? (const char *)st : "?");
        free(st);
        goto out;
    }
    if (sp_rtasr_set_param_string(asr, "transport", "websocket") != 0 ||
        sp_rtasr_set_param_string(asr, "backend", ASR_BACKEND) != 0 ||
        sp_rtasr_set_param_string(asr, "model", ASR_MODEL) != 0 ||
        sp_rtasr_set_autoflush_json(asr, SEGMENTATION, sizeof SEGMENTATION - 1) != 0) {
        printf("rtasr configuration failed\n");
        goto out;
    }
    rc = sp_rtasr_connect(asr);
    if (rc != 0) {
        uint32_t len = 0;
        char *st = sp_rtasr_get_status_alloc(asr, &len);
        printf("rtasr connect failed: %d status=%s\n", (int)rc, st ? st : "?");
        free(st);
        goto out;
    }
    printf("asr_transcribe started (backend %s)\n", ASR_BACKEND);

    sp_epoll_event_t records[WAIT_RECORDS];
    for (;;) {
        uint32_t cell = sizeof records;
        int32_t n = sp_ep_wait(ep, SP_PTR(records), SP_PTR(&cell), WAIT_MS);
        if (n < 0) {
            printf("epoll wait failed: %d\n", (int)n);
            goto out;
        }
        int hup = 0;
        for (int32_t i = 0; i < n; i++) {
            int32_t fd = records[i].fd;
            uint32_t ev = records[i].events;
            if (fd == asr && (ev & SPEAR_EPOLLIN)) {
                uint32_t len = 0;
                uint8_t *event = sp_rtasr_read_alloc(asr, &len);
                if (event != NULL) {
                    handle_event(event);
                    free(event);
                }
            }
            if (fd == asr && (ev & (SPEAR_EPOLLERR | SPEAR_EPOLLHUP))) {
                printf("rtasr %s\n", (ev & SPEAR_EPOLLERR) ? "err" : "hup");
                goto out;
            }
            if (fd == mic && (ev & SPEAR_EPOLLERR)) {
                printf("mic err\n");
                goto out;
            }
            if (fd == mic && (ev & SPEAR_EPOLLIN)) {
                uint32_t len = 0;
                uint8_t *frame = sp_mic_read_alloc(mic, &len);
                if (frame != NULL) {
                    sp_rtasr_write(asr, SP_PTR(frame), (int32_t)len); /* -EAGAIN drops it */
                    free(frame);
                }
            } else if (fd == mic && (ev & SPEAR_EPOLLHUP)) {
                hup = 1;
            }
        }
        if (hup) {
            printf("mic hup\n");
            status = 0;
            goto out;
        }
    }

out:
    sp_rtasr_close(asr);
    sp_mic_close(mic);
    sp_ep_close(ep);
    return status;
}
