/* dgcat's output formats: text, hex, json and raw. See cat.h. */
#include "cat.h"

#include <netinet/in.h>
#include <string.h>

#define HEX_ROW 16

/* The sender as "ADDRESS:PORT", IPv6 in brackets; "?" if it cannot be
 * formatted (never for datagrams the kernel delivered). */
static void format_sender(const dg_message *msg, dg_address *from, char *text, size_t size)
{
    if (dg_address_from_sockaddr(msg->addr, msg->addrlen, from) < 0) {
        snprintf(from->address, sizeof(from->address), "?");
        from->port = 0;
        from->family = AF_UNSPEC;
    }
    if (from->family == AF_INET6)
        snprintf(text, size, "[%s]:%d", from->address, from->port);
    else
        snprintf(text, size, "%s:%d", from->address, from->port);
}

/* One byte of text output: printable ASCII as it is, the rest escaped C
 * style, so that every datagram stays on one line. */
static void put_escaped(unsigned char c, FILE *out)
{
    switch (c) {
    case '\\':
        fputs("\\\\", out);
        return;
    case '\n':
        fputs("\\n", out);
        return;
    case '\r':
        fputs("\\r", out);
        return;
    case '\t':
        fputs("\\t", out);
        return;
    default:
        if (c >= 0x20 && c < 0x7f)
            fputc(c, out);
        else
            fprintf(out, "\\x%02x", c);
    }
}

static void print_size(const dg_message *msg, FILE *out)
{
    fprintf(out, "(%zu bytes%s)", msg->size, (msg->flags & DG_MSG_TRUNC) ? ", truncated" : "");
}

static void print_text(const dg_message *msg, const char *sender, FILE *out)
{
    const unsigned char *data = msg->data;

    fprintf(out, "%s ", sender);
    print_size(msg, out);
    fputs(": ", out);
    for (size_t i = 0; i < msg->length; i++)
        put_escaped(data[i], out);
    fputc('\n', out);
}

/* One row of a hex dump: offset, 16 bytes in hex, the same as text. */
static void print_hex_row(const unsigned char *row, size_t count, size_t offset, FILE *out)
{
    fprintf(out, "  %04zx ", offset);
    for (size_t i = 0; i < HEX_ROW; i++) {
        if (i % 8 == 0)
            fputc(' ', out);
        if (i < count)
            fprintf(out, "%02x ", row[i]);
        else
            fputs("   ", out);
    }
    fputs(" |", out);
    for (size_t i = 0; i < count; i++)
        fputc(row[i] >= 0x20 && row[i] < 0x7f ? row[i] : '.', out);
    fputs("|\n", out);
}

static void print_hex(const dg_message *msg, const char *sender, FILE *out)
{
    const unsigned char *data = msg->data;

    fprintf(out, "%s ", sender);
    print_size(msg, out);
    fputc('\n', out);
    for (size_t offset = 0; offset < msg->length; offset += HEX_ROW) {
        size_t count = msg->length - offset < HEX_ROW ? msg->length - offset : HEX_ROW;
        print_hex_row(data + offset, count, offset, out);
    }
}

/* The length of the UTF-8 sequence starting at s (at most left bytes),
 * or 0 if it is not valid UTF-8 (overlong forms and surrogates are not). */
static size_t utf8_sequence(const unsigned char *s, size_t left)
{
    size_t length = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2
                  : s[0] >= 0xe0 && s[0] < 0xf0 ? 3 : s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : 0;

    if (length == 0 || length > left)
        return 0;
    for (size_t i = 1; i < length; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    }
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return length;
}

static bool is_utf8(const unsigned char *data, size_t length)
{
    for (size_t i = 0; i < length;) {
        size_t step = utf8_sequence(data + i, length - i);
        if (step == 0)
            return false;
        i += step;
    }
    return true;
}

/* A JSON string of valid UTF-8 text: quotes, backslashes and control
 * characters escaped, everything else as it is. */
static void print_json_text(const unsigned char *data, size_t length, FILE *out)
{
    fputc('"', out);
    for (size_t i = 0; i < length; i++) {
        unsigned char c = data[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c == '\r')
            fputs("\\r", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void print_json_hex(const unsigned char *data, size_t length, FILE *out)
{
    fputc('"', out);
    for (size_t i = 0; i < length; i++)
        fprintf(out, "%02x", data[i]);
    fputc('"', out);
}

/* {"from":"127.0.0.1","port":5000,"size":5,"data":"hello"}; a payload
 * that is not UTF-8 comes as hex with "encoding":"hex", a truncated one
 * with "truncated":true. */
static void print_json(const dg_message *msg, const dg_address *from, FILE *out)
{
    const unsigned char *data = msg->data;
    bool text = is_utf8(data, msg->length);

    fputs("{\"from\":", out);
    print_json_text((const unsigned char *)from->address, strlen(from->address), out);
    fprintf(out, ",\"port\":%d,\"size\":%zu,\"data\":", from->port, msg->size);
    if (text)
        print_json_text(data, msg->length, out);
    else
        print_json_hex(data, msg->length, out);
    if (!text)
        fputs(",\"encoding\":\"hex\"", out);
    if (msg->flags & DG_MSG_TRUNC)
        fputs(",\"truncated\":true", out);
    fputs("}\n", out);
}

bool cat_print_message(const cat_config *config, const dg_message *msg)
{
    char sender[DG_ADDRSTRLEN + 16];
    dg_address from;

    format_sender(msg, &from, sender, sizeof(sender));
    switch (config->format) {
    case CAT_FORMAT_TEXT:
        print_text(msg, sender, stdout);
        break;
    case CAT_FORMAT_HEX:
        print_hex(msg, sender, stdout);
        break;
    case CAT_FORMAT_JSON:
        print_json(msg, &from, stdout);
        break;
    case CAT_FORMAT_RAW:
        fwrite(msg->data, 1, msg->length, stdout);
        break;
    }
    return !ferror(stdout);
}
