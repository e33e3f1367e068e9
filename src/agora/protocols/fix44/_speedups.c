/* FIX 4.4 hot paths in C: the common message only, everything else answered "not mine".
 *
 * Each function does what one Python fast path does (codec.decode's frame check and split,
 * messages.from_message's rows, messages.encode_message's rows) for the common message and
 * returns None for anything else, valid or not: the Python paths beside it then decide and name
 * any error. So this file never raises a FixError and never has to agree with the checked paths
 * on an error's text; it only has to give the same value where it gives one, which
 * tests/protocols/test_fix44_fast_paths.py checks against the checked paths.
 *
 * Optional: built by setup.py where a C compiler exists; without it (or with AGORA_PURE_PYTHON
 * set) the Python fast paths run.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_TAG 956        /* highest tag of FIX44.xml: above it, the Python paths decide */
#define MAX_ROWS 64        /* more fields than any typed message has: the Python path */
#define NS_PER_S 1000000000LL
#define MAX_SECS 253402300800LL /* 10000-01-01: UTCTIMESTAMP has four year digits */
#define MIN_SECS (-9000000000LL) /* ns since the epoch must fit an int64 */
#define MAX_PARSE_SECS 9000000000LL

static PyObject *tag_objects[MAX_TAG + 1];
static PyObject *value_attr; /* "_value_" of an Enum member */

/* ------------------------------------------------------------------------ calendar */

/* Days from 1970-01-01 to y-m-d, proleptic Gregorian (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, unsigned m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

static int digits(const char *s, Py_ssize_t n, int64_t *out)
{
    int64_t v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* UTCTIMESTAMP ``YYYYMMDD-HH:MM:SS[.f{1,9}]`` -> ns since the epoch; 0 when not the common
 * case (a bad text, or outside int64 ns), for the Python parser to decide. */
static int parse_timestamp(const char *s, Py_ssize_t n, int64_t *ns)
{
    int64_t y, mo, d, h, mi, sec, frac = 0;
    if (n != 17 && !(n >= 19 && n <= 27 && s[17] == '.'))
        return 0;
    if (s[8] != '-' || s[11] != ':' || s[14] != ':')
        return 0;
    if (!digits(s, 4, &y) || !digits(s + 4, 2, &mo) || !digits(s + 6, 2, &d)
        || !digits(s + 9, 2, &h) || !digits(s + 12, 2, &mi) || !digits(s + 15, 2, &sec))
        return 0;
    if (n > 17) {
        if (!digits(s + 18, n - 18, &frac))
            return 0;
        for (Py_ssize_t i = n - 18; i < 9; i++)
            frac *= 10;
    }
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, (unsigned)mo) || h > 23
        || mi > 59 || sec > 59)
        return 0;
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60
                   + sec;
    if (secs < MIN_SECS || secs > MAX_PARSE_SECS)
        return 0;
    *ns = secs * NS_PER_S + frac;
    return 1;
}

/* ``value`` in exactly ``width`` decimal digits (the caller keeps it below 10^width). */
static void put_digits(char *out, int width, int value)
{
    for (int i = width - 1; i >= 0; i--, value /= 10)
        out[i] = (char)('0' + value % 10);
}

/* ``YYYYMMDD-HH:MM:SS.sss`` (21 bytes, sub-ms truncated); 0 outside years 1970-9999. */
static int format_timestamp(int64_t ns, char *out)
{
    if (ns < 0 || ns / NS_PER_S >= MAX_SECS)
        return 0;
    int64_t secs = ns / NS_PER_S, y;
    unsigned m, d;
    int ms = (int)((ns % NS_PER_S) / 1000000), sod = (int)(secs % 86400);
    civil_from_days(secs / 86400, &y, &m, &d);
    put_digits(out, 4, (int)y);
    put_digits(out + 4, 2, (int)m);
    put_digits(out + 6, 2, (int)d);
    out[8] = '-';
    put_digits(out + 9, 2, sod / 3600);
    out[11] = ':';
    put_digits(out + 12, 2, sod / 60 % 60);
    out[14] = ':';
    put_digits(out + 15, 2, sod % 60);
    out[17] = '.';
    put_digits(out + 18, 3, ms);
    return 21;
}

/* ``value`` in decimal, a '-' first when negative; its length (at most 20). snprintf's
 * format parsing cost about 7% of the venue's instructions per FIX order. */
static int format_int(int64_t value, char *out)
{
    char digits[20];
    int n = 0, len = 0;
    uint64_t a = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        digits[n++] = (char)('0' + a % 10);
        a /= 10;
    } while (a);
    if (value < 0)
        out[len++] = '-';
    while (n)
        out[len++] = digits[--n];
    return len;
}

/* Price(4) units -> the shortest exact decimal, as messages.format_price writes it. */
static int format_price(int64_t units, char *out)
{
    if (units == INT64_MIN)
        return 0;
    int64_t a = units < 0 ? -units : units, frac = a % 10000;
    int n = 0;
    if (units < 0)
        out[n++] = '-';
    n += format_int(a / 10000, out + n);
    if (frac) {
        out[n++] = '.';
        put_digits(out + n, 4, (int)frac);
        n += 4;
        while (out[n - 1] == '0')
            n--;
    }
    return n;
}

/* ------------------------------------------------------------------------ decode */

static int is_data_length_tag(long tag)
{
    return tag == 95 || tag == 90 || tag == 212 || tag == 93 || tag == 354 || tag == 348
           || tag == 350;
}

/* Stage one of codec._check_frame: the index of ``10=``, or -1 when not the common frame. */
static Py_ssize_t common_frame(const unsigned char *p, Py_ssize_t n)
{
    if (n < 21 || memcmp(p, "8=FIX.4.4\x01" "9=", 12) != 0)
        return -1;
    Py_ssize_t end9 = -1;
    for (Py_ssize_t i = 12; i < 22 && i < n; i++)
        if (p[i] == 1) {
            end9 = i;
            break;
        }
    int64_t body_length;
    if (end9 <= 12 || !digits((const char *)p + 12, end9 - 12, &body_length))
        return -1;
    Py_ssize_t trailer = end9 + 1 + (Py_ssize_t)body_length;
    if (n != trailer + 7 || p[trailer - 1] != 1 || memcmp(p + trailer, "10=", 3) != 0
        || p[n - 1] != 1)
        return -1;
    int64_t check;
    if (!digits((const char *)p + trailer + 3, 3, &check))
        return -1;
    unsigned sum = 0;
    for (Py_ssize_t i = 0; i < trailer; i++)
        sum += p[i];
    return (int64_t)(sum & 0xFF) == check ? trailer : -1;
}

/* scan(data, validate) -> (tags, values, index, sending_time | None) | None
 *
 * codec.decode's fast path in one pass: the common frame; ASCII ``tag=value<SOH>`` fields with
 * tags 1-956, no tag repeated, no value empty, no data-length field; MsgType third; the standard
 * header complete; and (validate) a positive MsgSeqNum, a SendingTime, no PossDupFlag,
 * PossResend or OrigSendingTime. */
static PyObject *fix_scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "scan(data, validate) takes two arguments");
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0]))
        Py_RETURN_NONE;
    int validate = PyObject_IsTrue(args[1]);
    if (validate < 0)
        return NULL;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    if (common_frame(p, n) < 0)
        Py_RETURN_NONE;

    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        count += p[i] == 1;
    unsigned char seen[MAX_TAG + 1] = {0};
    const unsigned char *seq = NULL, *stamp = NULL;
    Py_ssize_t seq_len = 0, stamp_len = 0;
    PyObject *tags = PyList_New(count), *values = PyList_New(count), *index = PyDict_New();
    if (tags == NULL || values == NULL || index == NULL)
        goto fail;
    Py_ssize_t pos = 0, k = 0;
    while (pos < n) {
        long tag = 0;
        Py_ssize_t eq = pos;
        while (eq < n && eq - pos < 4 && p[eq] >= '0' && p[eq] <= '9')
            tag = tag * 10 + (p[eq++] - '0');
        if (eq == pos || eq >= n || p[eq] != '=' || p[pos] == '0' || tag > MAX_TAG || seen[tag]
            || is_data_length_tag(tag))
            goto punt;
        seen[tag] = 1;
        const unsigned char *start = p + eq + 1;
        const unsigned char *stop = memchr(start, 1, (size_t)(n - eq - 1));
        if (stop == NULL || stop == start)
            goto punt;
        Py_ssize_t len = stop - start;
        for (Py_ssize_t i = 0; i < len; i++)
            if (start[i] & 0x80)
                goto punt;
        PyObject *value = PyUnicode_New(len, 127);
        if (value == NULL)
            goto fail;
        memcpy(PyUnicode_1BYTE_DATA(value), start, (size_t)len);
        PyList_SET_ITEM(values, k, value);
        Py_INCREF(tag_objects[tag]);
        PyList_SET_ITEM(tags, k, tag_objects[tag]);
        if (PyDict_SetItem(index, tag_objects[tag], value) < 0)
            goto fail;
        if (tag == 34) {
            seq = start;
            seq_len = len;
        } else if (tag == 52) {
            stamp = start;
            stamp_len = len;
        }
        k++;
        pos = stop - p + 1;
    }
    if (k != count || k < 4 || PyList_GET_ITEM(tags, 2) != tag_objects[35] || !seen[49]
        || !seen[56] || seq == NULL || stamp == NULL)
        goto punt;
    PyObject *sending_time = Py_None;
    if (validate) {
        int positive = 0;
        for (Py_ssize_t i = 0; i < seq_len; i++) {
            if (seq[i] < '0' || seq[i] > '9')
                goto punt;
            positive |= seq[i] != '0';
        }
        int64_t ns;
        if (!positive || seen[122] || seen[43] || seen[97]
            || !parse_timestamp((const char *)stamp, stamp_len, &ns))
            goto punt;
        sending_time = PyLong_FromLongLong(ns);
        if (sending_time == NULL)
            goto fail;
    } else {
        Py_INCREF(sending_time);
    }
    PyObject *result = PyTuple_Pack(4, tags, values, index, sending_time);
    Py_DECREF(sending_time);
    Py_DECREF(tags);
    Py_DECREF(values);
    Py_DECREF(index);
    return result;

punt:
    Py_DECREF(tags);
    Py_DECREF(values);
    Py_DECREF(index);
    Py_RETURN_NONE;
fail: /* an exception is set (memory) */
    Py_XDECREF(tags);
    Py_XDECREF(values);
    Py_XDECREF(index);
    return NULL;
}

/* ------------------------------------------------------------------------ typed messages */

enum { R_STR, R_DIGITS, R_ENUM, R_PRICE, R_TIME }; /* messages._R_* */

/* messages.parse_price's common case: unsigned, at most 4 decimals and 14 whole digits (so
 * the units fit an int64). */
static int parse_price(const char *s, Py_ssize_t n, int64_t *units)
{
    const char *dot = memchr(s, '.', (size_t)n);
    Py_ssize_t whole_len = dot ? dot - s : n, frac_len = dot ? n - whole_len - 1 : 0;
    int64_t whole, frac = 0;
    if (whole_len < 1 || whole_len > 14 || !digits(s, whole_len, &whole))
        return 0;
    if (dot) {
        if (frac_len < 1 || frac_len > 4 || !digits(dot + 1, frac_len, &frac))
            return 0;
        for (Py_ssize_t i = frac_len; i < 4; i++)
            frac *= 10;
    }
    *units = whole * 10000 + frac;
    return 1;
}

/* read(index, rows) -> kwargs | None
 *
 * messages.from_message's loop for the common message: rows are (tag, attr, kind, code,
 * table, required); any missing required tag or text outside its kind's common case -> None. */
static PyObject *fix_read(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_CheckExact(args[0]) || !PyTuple_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "read(index: dict, rows: tuple)");
        return NULL;
    }
    PyObject *index = args[0], *rows = args[1];
    PyObject *kwargs = PyDict_New();
    if (kwargs == NULL)
        return NULL;
    for (Py_ssize_t r = 0; r < PyTuple_GET_SIZE(rows); r++) {
        PyObject *row = PyTuple_GET_ITEM(rows, r);
        PyObject *text = PyDict_GetItemWithError(index, PyTuple_GET_ITEM(row, 0));
        if (text == NULL) {
            if (PyErr_Occurred())
                goto fail;
            if (PyObject_IsTrue(PyTuple_GET_ITEM(row, 5)))
                goto punt;
            continue;
        }
        long code = PyLong_AsLong(PyTuple_GET_ITEM(row, 3));
        PyObject *value = NULL;
        Py_ssize_t n;
        const char *s;
        if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text))
            goto punt;
        s = (const char *)PyUnicode_1BYTE_DATA(text);
        n = PyUnicode_GET_LENGTH(text);
        if (code == R_STR) {
            value = Py_NewRef(text);
        } else if (code == R_DIGITS) {
            int64_t unused;
            if (n < 1 || n > 18 || !digits(s, n, &unused))
                goto punt;
            value = PyLong_FromLongLong(unused);
        } else if (code == R_ENUM) {
            if (!PyDict_CheckExact(PyTuple_GET_ITEM(row, 4)))
                goto punt;
            value = PyDict_GetItemWithError(PyTuple_GET_ITEM(row, 4), text);
            if (value == NULL)
                goto check;
            Py_INCREF(value);
        } else if (code == R_PRICE || code == R_TIME) {
            int64_t v;
            if (!(code == R_PRICE ? parse_price(s, n, &v) : parse_timestamp(s, n, &v)))
                goto punt;
            value = PyLong_FromLongLong(v);
        } else {
            goto punt;
        }
        if (value == NULL)
            goto fail;
        int failed = PyDict_SetItem(kwargs, PyTuple_GET_ITEM(row, 1), value);
        Py_DECREF(value);
        if (failed < 0)
            goto fail;
        continue;
    check:
        if (PyErr_Occurred())
            goto fail;
        goto punt;
    }
    return kwargs;

punt:
    Py_DECREF(kwargs);
    Py_RETURN_NONE;
fail:
    Py_DECREF(kwargs);
    return NULL;
}

enum { W_PLAIN, W_STR_ENUM, W_INT_ENUM, W_PRICE, W_TIME, W_BOOL }; /* messages._W_* */

typedef struct {
    const char *text;
    Py_ssize_t len;
} Piece;

typedef struct {
    Piece pieces[2 * MAX_ROWS + 12]; /* the header's 10, two per row, the last SOH */
    int count;
    Py_ssize_t total;
    char scratch[MAX_ROWS + 2][32]; /* the texts of numbers and timestamps */
    int used;
    PyObject *held[MAX_ROWS]; /* Enum values whose UTF-8 the pieces point into */
    int held_count;
} Body;

static void add(Body *b, const char *text, Py_ssize_t len)
{
    b->pieces[b->count].text = text;
    b->pieces[b->count++].len = len;
    b->total += len;
}

/* A non-empty str without SOH as UTF-8; 0 otherwise (or on an unencodable str). */
static int add_text(Body *b, PyObject *text)
{
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(text, &len);
    if (s == NULL) {
        PyErr_Clear(); /* a lone surrogate: the Python path raises what it raises */
        return 0;
    }
    if (len == 0 || memchr(s, 1, (size_t)len) != NULL)
        return 0;
    add(b, s, len);
    return 1;
}

/* An int's value when it fits 64 bits; 0 otherwise (the Python path writes big ints). */
static int as_int64(PyObject *value, long long *out)
{
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (*out == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

static int add_int(Body *b, PyObject *value, int as_price)
{
    long long v;
    if (!as_int64(value, &v))
        return 0;
    char *out = b->scratch[b->used++];
    int len = as_price ? format_price(v, out) : format_int(v, out);
    if (len <= 0)
        return 0;
    add(b, out, len);
    return 1;
}

static int add_timestamp(Body *b, PyObject *value)
{
    long long ns;
    if (!as_int64(value, &ns))
        return 0;
    char *out = b->scratch[b->used++];
    int len = format_timestamp(ns, out);
    if (len == 0)
        return 0;
    add(b, out, len);
    return 1;
}

/* One present attribute's text by its row's code; 0 when not the common case. */
static int add_value(Body *b, PyObject *value, PyObject *kind, long code)
{
    if (code == W_PLAIN) {
        if (PyUnicode_CheckExact(value))
            return add_text(b, value);
        return PyLong_CheckExact(value) && add_int(b, value, 0);
    }
    if (code == W_PRICE)
        return PyLong_CheckExact(value) && add_int(b, value, 1);
    if (code == W_TIME)
        return PyLong_CheckExact(value) && add_timestamp(b, value);
    if (code == W_BOOL) {
        if (value != Py_True && value != Py_False)
            return 0;
        add(b, value == Py_True ? "Y" : "N", 1);
        return 1;
    }
    if ((PyObject *)Py_TYPE(value) != kind || b->held_count == MAX_ROWS)
        return 0;
    PyObject *raw = PyObject_GetAttr(value, value_attr);
    if (raw == NULL) {
        PyErr_Clear();
        return 0;
    }
    b->held[b->held_count++] = raw;
    if (code == W_STR_ENUM)
        return PyUnicode_CheckExact(raw) && add_text(b, raw);
    return code == W_INT_ENUM && PyLong_CheckExact(raw) && add_int(b, raw, 0);
}

static int add_field(Body *b, const char *prefix, PyObject *text)
{
    add(b, prefix, (Py_ssize_t)strlen(prefix));
    return PyUnicode_CheckExact(text) && add_text(b, text);
}

/* The header and the present attributes' ``<SOH>tag=text`` pieces; 0: not the common case. */
static int build(Body *b, PyObject *const *args)
{
    PyObject *values = args[0], *rows = args[1];
    long long seq;
    if (!PyTuple_CheckExact(values) || !PyTuple_CheckExact(rows)
        || PyTuple_GET_SIZE(rows) > MAX_ROWS || !PyLong_CheckExact(args[5])
        || !PyLong_CheckExact(args[6]) || !as_int64(args[5], &seq) || seq < 1)
        return 0;
    if (!add_field(b, "35=", args[2]) || !add_field(b, "\x01" "49=", args[3])
        || !add_field(b, "\x01" "56=", args[4]))
        return 0;
    add(b, "\x01" "34=", 4);
    if (!add_int(b, args[5], 0))
        return 0;
    add(b, "\x01" "52=", 4);
    if (!add_timestamp(b, args[6]))
        return 0;
    for (Py_ssize_t r = 0; r < PyTuple_GET_SIZE(rows); r++) {
        PyObject *row = PyTuple_GET_ITEM(rows, r);
        Py_ssize_t position = PyLong_AsSsize_t(PyTuple_GET_ITEM(row, 0));
        if (position < 0 || position >= PyTuple_GET_SIZE(values)) {
            PyErr_Clear();
            return 0;
        }
        PyObject *value = PyTuple_GET_ITEM(values, position);
        if (value == Py_None) {
            if (PyTuple_GET_ITEM(row, 4) != Py_False)
                return 0; /* a required attribute missing: the checked loop names it */
            continue;
        }
        Py_ssize_t prefix_len;
        const char *prefix = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(row, 1), &prefix_len);
        if (prefix == NULL) {
            PyErr_Clear();
            return 0;
        }
        add(b, prefix, prefix_len);
        if (!add_value(b, value, PyTuple_GET_ITEM(row, 2),
                       PyLong_AsLong(PyTuple_GET_ITEM(row, 3))))
            return 0;
    }
    add(b, "\x01", 1);
    return 1;
}

/* encode_message(values, rows, msg_type, sender, target, seq_num, sending_time) -> bytes | None
 *
 * messages.encode_message's fast path: ``values`` is msgspec.structs.astuple of the message,
 * ``rows`` its class's (position, "<SOH>tag=", kind, code, required) rows. */
static PyObject *fix_encode_message(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "encode_message takes seven arguments");
        return NULL;
    }
    Body b;
    b.count = 0;
    b.total = 0;
    b.used = 0;
    b.held_count = 0;
    PyObject *result = NULL;
    if (!build(&b, args))
        goto done;
    char head[40] = "8=FIX.4.4\x01" "9=";
    int head_len = 12 + format_int(b.total, head + 12);
    head[head_len++] = '\x01';
    result = PyBytes_FromStringAndSize(NULL, head_len + b.total + 7);
    if (result == NULL)
        goto done;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result), *w = out;
    memcpy(w, head, (size_t)head_len);
    w += head_len;
    for (int i = 0; i < b.count; i++) {
        memcpy(w, b.pieces[i].text, (size_t)b.pieces[i].len);
        w += b.pieces[i].len;
    }
    unsigned sum = 0;
    for (unsigned char *c = out; c < w; c++)
        sum += *c;
    memcpy(w, "10=", 3);
    put_digits((char *)w + 3, 3, (int)(sum & 0xFF));
    w[6] = '\x01';
done:
    for (int i = 0; i < b.held_count; i++)
        Py_DECREF(b.held[i]);
    if (result == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return result;
}

/* ------------------------------------------------------------------------ framing */

/* split(data, limit) -> (frames, end)
 *
 * framer._fast_frames in one pass: the complete, well-formed frames back to back from the
 * start of ``data`` (which starts with ``8=FIX.4.4<SOH>9=``) and the offset after the last;
 * the framer's checked loop decides whatever follows. */
static PyObject *fix_split(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_CheckExact(args[0]) || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "split takes bytes and an int");
        return NULL;
    }
    long long limit;
    if (!as_int64(args[1], &limit))
        limit = LLONG_MAX;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]), pos = 0;
    PyObject *frames = PyList_New(0);
    if (frames == NULL)
        return NULL;
    while (size - pos >= 12 && memcmp(p + pos, "8=FIX.4.4\x01" "9=", 12) == 0) {
        Py_ssize_t end9 = -1;
        for (Py_ssize_t i = pos + 12; i < pos + 23 && i < size; i++)
            if (p[i] == 1) {
                end9 = i;
                break;
            }
        int64_t length;
        if (end9 <= pos + 12 || !digits((const char *)p + pos + 12, end9 - pos - 12, &length)
            || length > limit)
            break;
        Py_ssize_t trailer = end9 + 1 + (Py_ssize_t)length, total = trailer + 7;
        int64_t check;
        if (total > size || p[trailer - 1] != 1 || memcmp(p + trailer, "10=", 3) != 0
            || !digits((const char *)p + trailer + 3, 3, &check) || p[total - 1] != 1)
            break;
        PyObject *frame = PyBytes_FromStringAndSize((const char *)p + pos, total - pos);
        if (frame == NULL || PyList_Append(frames, frame) < 0) {
            Py_XDECREF(frame);
            Py_DECREF(frames);
            return NULL;
        }
        Py_DECREF(frame);
        pos = total;
    }
    return Py_BuildValue("(Nn)", frames, pos);
}

/* ------------------------------------------------------------------------ module */

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))fix_scan, METH_FASTCALL,
     "scan(data, validate) -> (tags, values, index, sending_time) | None"},
    {"read", (PyCFunction)(void (*)(void))fix_read, METH_FASTCALL,
     "read(index, rows) -> kwargs | None"},
    {"split", (PyCFunction)(void (*)(void))fix_split, METH_FASTCALL,
     "split(data, limit) -> (frames, end)"},
    {"encode_message", (PyCFunction)(void (*)(void))fix_encode_message, METH_FASTCALL,
     "encode_message(values, rows, msg_type, sender, target, seq_num, sending_time)"
     " -> bytes | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_speedups",
    .m_doc = "FIX 4.4 hot paths in C for the common message (see the file's notes).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    for (long tag = 0; tag <= MAX_TAG; tag++) {
        tag_objects[tag] = PyLong_FromLong(tag);
        if (tag_objects[tag] == NULL)
            return NULL;
    }
    value_attr = PyUnicode_InternFromString("_value_");
    if (value_attr == NULL)
        return NULL;
    return PyModule_Create(&module);
}
