/* Command lines from one table; see options.h. */
#include "options.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum { PARSE_OK = -1 };

/* getopt_long() returns this plus the row index for a long option, so it
 * never clashes with a short letter. */
#define LONG_BASE 256
#define HELP_WIDTH 79

static bool applies_to(const tool_option *row, unsigned mode)
{
    return row->modes == 0 || (row->modes & mode) != 0;
}

static bool takes_value(const tool_option *row)
{
    return row->arg != TOOL_ARG_FLAG && row->arg != TOOL_ARG_HELP;
}

#ifndef NDEBUG
/* Whether an integer of this field width can hold max. */
static bool fits(size_t width, uint64_t max)
{
    return width == 8 || ((width == 1 || width == 2 || width == 4) && max >> (8 * width) == 0);
}

/* The table's own consistency, checked by assert() on every parse: rows
 * of one name agree, letters are unique, each field suits its kind. A
 * broken table is a bug of the tool, caught by any run of it. */
static bool row_is_sound(const tool_options *options, size_t i)
{
    const tool_option *row = &options->table[i];

    for (size_t j = 0; j < i; j++) {
        const tool_option *other = &options->table[j];
        bool same = strcmp(row->name, other->name) == 0;
        if (same ? row->letter != other->letter || row->arg != other->arg
                 : row->letter != 0 && row->letter == other->letter)
            return false;
    }
    if (row->help == NULL || (row->letter != 0 && !isalnum((unsigned char)row->letter)))
        return false;
    switch (row->arg) {
    case TOOL_ARG_FLAG:
        return row->width == sizeof(bool);
    case TOOL_ARG_STRING:
        return row->width == sizeof(const char *);
    case TOOL_ARG_POSITIVE:
    case TOOL_ARG_PERCENT:
        return row->width == sizeof(double);
    case TOOL_ARG_NUMBER:
    case TOOL_ARG_BYTES:
        return fits(row->width, row->max) && row->min <= row->max;
    case TOOL_ARG_CHOICE:
        return row->choices != NULL && fits(row->width, 0);
    case TOOL_ARG_HELP:
        return true;
    }
    return false;
}
#endif

/* The first row of this name: the one getopt_long() knows. */
static size_t first_row(const tool_options *options, const char *name)
{
    size_t i = 0;

    while (strcmp(options->table[i].name, name) != 0)
        i++;
    return i;
}

/* getopt_long()'s long options (one per name) and its short-option string
 * (":" first: report a missing value as ':'). */
static void build_getopt(const tool_options *options, struct option *longs, char *letters)
{
    size_t n = 0, k = 0;

    letters[k++] = ':';
    for (size_t i = 0; i < options->count; i++) {
        const tool_option *row = &options->table[i];
        assert(row_is_sound(options, i));
        if (first_row(options, row->name) != i)
            continue;
        longs[n++] = (struct option){row->name, takes_value(row) ? required_argument : no_argument,
                                     NULL, LONG_BASE + (int)i};
        if (row->letter != 0) {
            letters[k++] = row->letter;
            if (takes_value(row))
                letters[k++] = ':';
        }
    }
    longs[n] = (struct option){NULL, 0, NULL, 0};
    letters[k] = '\0';
}

/* The long name of what getopt_long() returned (a long or short option). */
static const char *result_name(const tool_options *options, int result)
{
    size_t i = 0;

    if (result >= LONG_BASE)
        return options->table[result - LONG_BASE].name;
    while (options->table[i].letter != result)
        i++;
    return options->table[i].name;
}

/* The row of the mode for what getopt_long() returned, or NULL when the
 * option belongs to other modes only. */
static const tool_option *find_row(const tool_options *options, int result)
{
    const char *name = result_name(options, result);

    for (size_t i = 0; i < options->count; i++) {
        const tool_option *row = &options->table[i];
        if (strcmp(row->name, name) == 0 && applies_to(row, options->mode))
            return row;
    }
    return NULL;
}

/* Writes "a, b or c" (the row's choices) into text. */
static void format_choices(const tool_option *row, char *text, size_t size)
{
    size_t used = 0;

    text[0] = '\0';
    for (size_t i = 0; row->choices[i] != NULL && used < size; i++) {
        const char *separator = i == 0 ? "" : row->choices[i + 1] == NULL ? " or " : ", ";
        int n = snprintf(text + used, size - used, "%s%s", separator, row->choices[i]);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* "bad WHAT 'TEXT': expected RANGE". Returns TOOL_EXIT_USAGE. */
static int bad_value(const tool_options *options, const tool_option *row, const char *text)
{
    char expected[128];

    if (row->expected != NULL)
        snprintf(expected, sizeof(expected), "%s", row->expected);
    else if (row->arg == TOOL_ARG_CHOICE)
        format_choices(row, expected, sizeof(expected));
    else if (row->arg == TOOL_ARG_PERCENT)
        snprintf(expected, sizeof(expected), "a percentage, 0..100");
    else
        snprintf(expected, sizeof(expected), "%llu..%llu", (unsigned long long)row->min,
                 (unsigned long long)row->max);
    tool_error(options->prog, "bad %s '%s': expected %s", row->what ? row->what : row->name,
               text, expected);
    return TOOL_EXIT_USAGE;
}

/* Stores value into a field of width bytes (an unsigned or, for values
 * that fit, a signed integer or enum: the same bytes). */
static void store_number(void *field, size_t width, uint64_t value)
{
    uint8_t u8 = (uint8_t)value;
    uint16_t u16 = (uint16_t)value;
    uint32_t u32 = (uint32_t)value;

    if (width == 1)
        memcpy(field, &u8, 1);
    else if (width == 2)
        memcpy(field, &u16, 2);
    else if (width == 4)
        memcpy(field, &u32, 4);
    else
        memcpy(field, &value, 8);
}

/* Whether text is one of the choices; sets *index. */
static bool find_choice(const tool_option *row, const char *text, uint64_t *index)
{
    for (uint64_t i = 0; row->choices[i] != NULL; i++) {
        if (strcmp(text, row->choices[i]) == 0) {
            *index = i;
            return true;
        }
    }
    return false;
}

/* The value of a row stored as an integer: a number, a byte count or
 * the index of a choice. */
static bool parse_integer(const tool_option *row, const char *text, uint64_t *number)
{
    if (row->arg == TOOL_ARG_NUMBER)
        return tool_parse_uint64(text, row->min, row->max, number);
    if (row->arg == TOOL_ARG_BYTES)
        return tool_parse_bytes(text, row->min, row->max, number);
    return find_choice(row, text, number);
}

/* A share in percent, 0..100 ("0", "12.5", "100"): no sign, no blank,
 * nothing after the number. */
static bool parse_percent(const char *text, double *out)
{
    char *end;
    double value;

    if (*text < '0' || *text > '9')
        return false;
    errno = 0;
    value = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !(value >= 0 && value <= 100))
        return false;
    *out = value;
    return true;
}

/* Checks and stores one option's value. Returns PARSE_OK or
 * TOOL_EXIT_USAGE. */
static int apply_row(const tool_options *options, const tool_option *row, const char *text,
                     void *config)
{
    char *field = (char *)config + row->offset;
    const bool yes = true;
    uint64_t number;
    double real;

    switch (row->arg) {
    case TOOL_ARG_FLAG:
        memcpy(field, &yes, sizeof(yes));
        return PARSE_OK;
    case TOOL_ARG_STRING:
        memcpy(field, &text, sizeof(text));
        return PARSE_OK;
    case TOOL_ARG_POSITIVE:
        if (!(row->si ? tool_parse_si(text, (double)row->max, &real)
                      : tool_parse_positive(text, (double)row->max, &real)))
            return bad_value(options, row, text);
        memcpy(field, &real, sizeof(real));
        return PARSE_OK;
    case TOOL_ARG_PERCENT:
        if (!parse_percent(text, &real))
            return bad_value(options, row, text);
        memcpy(field, &real, sizeof(real));
        return PARSE_OK;
    case TOOL_ARG_NUMBER:
    case TOOL_ARG_BYTES:
    case TOOL_ARG_CHOICE:
        if (!parse_integer(row, text, &number))
            return bad_value(options, row, text);
        store_number(field, row->width, number);
        return PARSE_OK;
    case TOOL_ARG_HELP:
        break;
    }
    tool_options_print_help(options, stdout);
    return TOOL_EXIT_OK;
}

/* Applies one getopt_long() result. Returns PARSE_OK or the exit status. */
static int apply_result(tool_options *options, int result, char *argv[], void *config)
{
    const tool_option *row;

    if (result == '?' || result == ':') {
        tool_option_error(options->prog, result, argv);
        return TOOL_EXIT_USAGE;
    }
    row = find_row(options, result);
    if (row == NULL) {
        tool_error(options->prog, "option '--%s' does not apply to %s",
                   result_name(options, result), options->mode_name);
        return TOOL_EXIT_USAGE;
    }
    options->given[row - options->table] = true;
    return apply_row(options, row, optarg, config);
}

int tool_options_parse(tool_options *options, int argc, char *argv[], void *config)
{
    struct option longs[TOOL_OPTIONS_MAX + 1];
    char letters[2 * TOOL_OPTIONS_MAX + 2];
    int result;

    assert(options->count <= TOOL_OPTIONS_MAX);
    build_getopt(options, longs, letters);
    memset(options->given, 0, sizeof(options->given));
    opterr = 0;
    optind = 1;
    while ((result = getopt_long(argc, argv, letters, longs, NULL)) != -1) {
        int status = apply_result(options, result, argv, config);
        if (status != PARSE_OK)
            return status;
    }
    options->next = optind;
    if (optind < argc && !options->positionals) {
        tool_error(options->prog, "unexpected argument '%s'", argv[optind]);
        return TOOL_EXIT_USAGE;
    }
    return PARSE_OK;
}

bool tool_options_given(const tool_options *options, const char *name)
{
    for (size_t i = 0; i < options->count; i++) {
        if (options->given[i] && strcmp(options->table[i].name, name) == 0)
            return true;
    }
    return false;
}

const tool_option *tool_options_missing(const tool_options *options)
{
    for (size_t i = 0; i < options->count; i++) {
        const tool_option *row = &options->table[i];
        if (row->required && applies_to(row, options->mode) &&
            !tool_options_given(options, row->name))
            return row;
    }
    return NULL;
}

/* ---- --help ---------------------------------------------------------------- */

/* Prints length bytes of word at *column, first on a new line indented to
 * indent if it would pass HELP_WIDTH; a blank before it unless it starts
 * a line. */
static void put_word(FILE *out, const char *word, int length, int *column, int indent)
{
    if (*column > indent && *column + 1 + length > HELP_WIDTH) {
        fprintf(out, "\n%*s", indent, "");
        *column = indent;
    }
    if (*column > indent) {
        fputc(' ', out);
        (*column)++;
    }
    fprintf(out, "%.*s", length, word);
    *column += length;
}

/* Prints the words of text from column indent (already reached), wrapped
 * at HELP_WIDTH onto lines indented alike, and ends the line. */
static void put_text(FILE *out, const char *text, int indent)
{
    int column = indent;

    while (*text != '\0') {
        int length = (int)strcspn(text, " ");
        put_word(out, text, length, &column, indent);
        text += length;
        text += strspn(text, " ");
    }
    fputc('\n', out);
}

/* "usage: USAGE --a A --b B [--c C] ...": the required options first. */
static void print_usage_lines(const tool_options *options, FILE *out)
{
    char part[64];
    int indent = fprintf(out, "usage: %s ", options->usage);
    int column = indent;

    for (int optional = 0; optional <= 1; optional++) {
        for (size_t i = 0; i < options->count; i++) {
            const tool_option *row = &options->table[i];
            if (!applies_to(row, options->mode) || row->arg == TOOL_ARG_HELP ||
                row->required == (optional == 1))
                continue;
            int length = snprintf(part, sizeof(part), "%s--%s%s%s%s", optional ? "[" : "",
                                  row->name, row->value ? " " : "", row->value ? row->value : "",
                                  optional ? "]" : "");
            put_word(out, part, length, &column, indent);
        }
    }
    fputc('\n', out);
}

/* "  -x, --name VALUE" or "      --name VALUE" into text; returns its
 * length. */
static int format_option(const tool_option *row, char *text, size_t size)
{
    char letter[8] = "    ";

    if (row->letter != 0)
        snprintf(letter, sizeof(letter), "-%c, ", row->letter);
    return snprintf(text, size, "  %s--%s%s%s", letter, row->name, row->value ? " " : "",
                    row->value ? row->value : "");
}

/* The column the help sentences start at: two past the widest option. */
static int help_column(const tool_options *options)
{
    char text[80];
    int column = 0;

    for (size_t i = 0; i < options->count; i++) {
        int length = format_option(&options->table[i], text, sizeof(text));
        if (applies_to(&options->table[i], options->mode) && length + 2 > column)
            column = length + 2;
    }
    return column;
}

void tool_options_print_help(const tool_options *options, FILE *out)
{
    int column = help_column(options);
    char text[80];

    if (options->synopsis != NULL)
        fprintf(out, "usage: %s", options->synopsis);
    else
        print_usage_lines(options, out);
    fputc('\n', out);
    if (options->intro != NULL)
        fprintf(out, "%s\n", options->intro);
    for (size_t i = 0; i < options->count; i++) {
        const tool_option *row = &options->table[i];
        if (!applies_to(row, options->mode))
            continue;
        format_option(row, text, sizeof(text));
        fprintf(out, "%-*s", column, text);
        put_text(out, row->help, column);
    }
    if (options->outro != NULL)
        fprintf(out, "\n%s", options->outro);
    fflush(out);
}
