/*
 * sdk_selftest -- checks spear.h without a spear host (it imports WASI only).
 *
 * Prints every constant of the header as `const <NAME> <value>` and the results of the
 * JSON helpers as `json <case> rc=<n> out=<text>`, then `done`.  A test runs it under
 * plain WASI and compares the lines with the ABI (tests/guests/test_guest_build.py).
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

#define C(name) printf("const %s %d\n", #name, (int)(name))

static void json_case(const char *name, const char *doc, const char *key, size_t cap) {
    char out[256];
    int rc = sp_json_get_string(doc, key, out, cap);
    printf("json %s rc=%d out=", name, rc);
    for (const unsigned char *p = (const unsigned char *)out; rc >= 0 && *p; p++) {
        if (*p < 0x20 || *p == '\\') printf("\\x%02x", *p);
        else putchar(*p);
    }
    putchar('\n');
}

int main(void) {
    /* errno */
    C(SPEAR_CCHAT_OK); C(SPEAR_EPERM); C(SPEAR_ENOENT); C(SPEAR_EIO); C(SPEAR_EBADF);
    C(SPEAR_EAGAIN); C(SPEAR_ENOMEM); C(SPEAR_EACCES); C(SPEAR_EFAULT); C(SPEAR_EINVAL);
    C(SPEAR_ENOSPC); C(SPEAR_EPIPE); C(SPEAR_ENOSYS); C(SPEAR_ECONNRESET); C(SPEAR_ENOTCONN);
    C(SPEAR_ETIMEDOUT);
    C(SPEAR_CCHAT_ERR_INVALID_FD); C(SPEAR_CCHAT_ERR_INVALID_PTR);
    C(SPEAR_CCHAT_ERR_BUFFER_TOO_SMALL); C(SPEAR_CCHAT_ERR_INVALID_CMD);
    C(SPEAR_CCHAT_ERR_INTERNAL);
    /* chat */
    C(SPEAR_CCHAT_CTL_SET_PARAM); C(SPEAR_CCHAT_CTL_GET_METRICS);
    C(SPEAR_CCHAT_SEND_FLAG_ENABLE_METRICS); C(SPEAR_CCHAT_SEND_FLAG_AUTO_TOOL_CALL);
    C(AUTO_TOOL_CALL);
    /* rtasr */
    C(SPEAR_RTA_CTL_SET_PARAM); C(SPEAR_RTA_CTL_CONNECT); C(SPEAR_RTA_CTL_GET_STATUS);
    C(SPEAR_RTA_CTL_SEND_EVENT); C(SPEAR_RTA_CTL_FLUSH); C(SPEAR_RTA_CTL_CLEAR);
    C(SPEAR_RTA_CTL_SET_AUTOFLUSH); C(SPEAR_RTA_CTL_GET_AUTOFLUSH);
    C(SPEAR_RTA_CTL_SET_SEGMENTATION); C(SPEAR_RTA_CTL_GET_SEGMENTATION);
    /* mic */
    C(SPEAR_MIC_CTL_SET_PARAM); C(SPEAR_MIC_CTL_GET_STATUS); C(SPEAR_MIC_CTL_LIST_DEVICES);
    /* user streams */
    C(SPEAR_USER_STREAM_DIR_INBOUND); C(SPEAR_USER_STREAM_DIR_OUTBOUND);
    C(SPEAR_USER_STREAM_DIR_BIDIRECTIONAL); C(SPEAR_USER_STREAM_CTL_EVENT_STREAM_CONNECTED);
    C(SPEAR_USER_STREAM_CTL_EVENT_SESSION_CLOSED);
    printf("const sizeof_sp_user_stream_ctl_event_t %d\n", (int)sizeof(sp_user_stream_ctl_event_t));
    /* epoll */
    C(SPEAR_EPOLL_CTL_ADD); C(SPEAR_EPOLL_CTL_MOD); C(SPEAR_EPOLL_CTL_DEL);
    C(SPEAR_EP_CTL_ADD); C(SPEAR_EP_CTL_MOD); C(SPEAR_EP_CTL_DEL);
    C(SPEAR_EPOLLIN); C(SPEAR_EPOLLOUT); C(SPEAR_EPOLLERR); C(SPEAR_EPOLLHUP);
    printf("const sizeof_sp_epoll_event_t %d\n", (int)sizeof(sp_epoll_event_t));
    /* fd ctl */
    C(SPEAR_FD_CTL_SET_FLAGS); C(SPEAR_FD_CTL_GET_FLAGS); C(SPEAR_FD_CTL_GET_KIND);
    C(SPEAR_FD_CTL_GET_STATUS); C(SPEAR_FD_CTL_GET_METRICS);
    /* log */
    C(SP_LOG_TRACE); C(SP_LOG_DEBUG); C(SP_LOG_INFO); C(SP_LOG_WARN); C(SP_LOG_ERROR);
    C(SP_LOG_MAX_BYTES);

    /* JSON helpers */
    const char *ev = "{\"item_id\":\"item_1\",\"transcript\":\"He said \\\"hi\\\"\\n\\\\ok\","
                     "\"type\":\"conversation.item.input_audio_transcription.completed\"}";
    json_case("type", ev, "type", 256);
    json_case("item_id", ev, "item_id", 256);
    json_case("escapes", ev, "transcript", 256);
    json_case("missing", ev, "delta", 256);
    json_case("truncated", ev, "item_id", 5);
    json_case("unicode", "{\"t\":\"caf\\u00e9 \\u20ac \\ud83d\\ude00\"}", "t", 256);
    json_case("spaces", "{ \"type\" : \"x.y\" , \"n\": 3}", "type", 256);
    json_case("nested", "{\"type\":\"error\",\"error\":{\"message\":\"bad \\\"thing\\\"\"}}", "message", 256);
    json_case("key_in_value", "{\"a\":\"\\\"type\\\":\\\"no\\\"\",\"type\":\"yes\"}", "type", 256);
    json_case("top_level_wins",
              "{\"error\":{\"message\":\"m\",\"type\":\"invalid_request_error\"},\"type\":\"error\"}",
              "type", 256);
    json_case("not_string", "{\"seq\":12}", "seq", 256);
    int64_t seq = -1;
    int rc = sp_json_get_int("{\"seq\":12,\"neg\":-7}", "seq", &seq);
    printf("json int_seq rc=%d out=%lld\n", rc, (long long)seq);
    rc = sp_json_get_int("{\"seq\":12,\"neg\":-7}", "neg", &seq);
    printf("json int_neg rc=%d out=%lld\n", rc, (long long)seq);
    printf("json bool rc=%d\n", sp_json_get_bool("{\"a\":true}", "a"));
    const char *v = sp_json_find("{\"error\":{\"code\":\"x\",\"m\":[1,{\"y\":\"}\"}]},\"z\":1}", "error");
    printf("json value_len rc=%d\n", (int)sp_json_value_len(v));
    printf("json type_is rc=%d\n", sp_json_type_is(ev, "conversation.item.input_audio_transcription.completed"));
    char esc[64];
    size_t n = sp_json_escape(esc, sizeof esc, "a\"b\\c\nd\x01", 8);
    printf("json escape rc=%d out=%s\n", (int)n, esc);
    printf("done\n");
    return 0;
}
