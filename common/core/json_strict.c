/* json_strict.c — a one-pass strict JSON (RFC 8259) checker with an explicit stack. */
#include "core/json_strict.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_ARRAY = 1, KIND_OBJECT = 2 };

struct frame {
	size_t open_off;    /* where its '[' or '{' is */
	size_t key_base;    /* an object's first entry in the key list */
	unsigned char kind;
};

/* A member name, decoded. p points into the input when the name has no escapes, else into
 * the arena; both stay put until the check ends, so sorting needs no context. */
struct key {
	const char *p;
	size_t len;
	size_t off; /* its opening quote */
};

struct checker {
	const unsigned char *s;
	size_t len;
	size_t i;
	int max_depth;
	struct frame *stack;
	size_t depth, stack_cap;
	struct key *keys;
	size_t n_keys, keys_cap;
	char *arena;        /* decoded names that had escapes; allocated once, never moved */
	size_t arena_used, arena_cap;
	const char *const *want;
	struct json_strict_span *spans;
	long want_idx;      /* the top-level member whose value comes next is want[want_idx] */
	char *err;
	size_t errlen;
};

/* Removes an incomplete UTF-8 sequence from the end of s (after a cut by snprintf). */
static void utf8_trim_end(char *s)
{
	size_t n = strlen(s), k = 0;
	unsigned char c;

	while (k < n && k < 4 && ((unsigned char)s[n - 1 - k] & 0xC0) == 0x80)
		k++;
	if (k == n)
		return;
	c = (unsigned char)s[n - 1 - k];
	if (c < 0x80)
		return;
	size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
	if (k + 1 < need)
		s[n - 1 - k] = '\0';
}

static int fail(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct checker *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!c->err || !c->errlen)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	if (n < 0)
		c->err[0] = '\0';
	else if ((size_t)n >= c->errlen)
		utf8_trim_end(c->err);
	return -1;
}

/* Length of the well-formed UTF-8 sequence of 2..4 bytes at p (RFC 3629 table 3-7), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xBF;
	size_t n;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0; /* overlong */
	else if (c == 0xED)
		hi = 0x9F; /* U+D800..U+DFFF */
	else if (c == 0xF0)
		lo = 0x90; /* overlong */
	else if (c == 0xF4)
		hi = 0x8F; /* above U+10FFFF */
	if (avail < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t k = 2; k < n; k++)
		if ((p[k] & 0xC0) != 0x80)
			return 0;
	return n;
}

/* How a byte is named in a message (always ASCII). */
static const char *describe(const struct checker *c, size_t i, char buf[32])
{
	unsigned char ch;

	if (i >= c->len)
		return "the end of the input";
	ch = c->s[i];
	if (ch == 0)
		return "a NUL byte";
	if (ch == '\'')
		return "a single quote (JSON strings take double quotes)";
	if (ch > 0x20 && ch < 0x7F)
		snprintf(buf, 32, "'%c'", ch);
	else
		snprintf(buf, 32, "byte 0x%02x", ch);
	return buf;
}

/* One character of a member name as shown in a message: writes it into tmp (8 bytes) and
 * returns its shown length; *step is its length in the name. */
static size_t show_char(const char *p, size_t left, char tmp[8], size_t *step)
{
	unsigned char ch = (unsigned char)p[0];

	if (ch < 0x20 || ch == 0x7F) {
		snprintf(tmp, 8, "\\u%04x", ch);
		*step = 1;
		return 6;
	}
	if (ch == '"' || ch == '\\') {
		tmp[0] = '\\';
		tmp[1] = (char)ch;
		*step = 1;
		return 2;
	}
	*step = ch < 0x80 ? 1 : ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : 2;
	if (*step > left)
		*step = left;
	memcpy(tmp, p, *step);
	return *step;
}

/* A member name for a message: at most JSON_STRICT_KEY_SHOWN_MAX bytes of whole characters,
 * '"' '\\' and control bytes escaped, ending in "..." when cut. p[0..len) is valid UTF-8. */
static void show_key(const char *p, size_t len, char out[JSON_STRICT_KEY_SHOWN_MAX + 1])
{
	size_t total = 0, o = 0, i, step, n, cap = JSON_STRICT_KEY_SHOWN_MAX;
	char tmp[8];

	for (i = 0; i < len && total <= cap; i += step)
		total += show_char(p + i, len - i, tmp, &step);
	if (total > cap)
		cap -= 3; /* room for "..." */
	for (i = 0; i < len; i += step) {
		n = show_char(p + i, len - i, tmp, &step);
		if (o + n > cap)
			break;
		memcpy(out + o, tmp, n);
		o += n;
	}
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void skip_ws(struct checker *c)
{
	while (c->i < c->len) {
		unsigned char ch = c->s[c->i];
		if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
			break;
		c->i++;
	}
}

static int hex4(const unsigned char *p, unsigned *out)
{
	unsigned v = 0;
	for (int k = 0; k < 4; k++) {
		unsigned char h = p[k];
		v <<= 4;
		if (h >= '0' && h <= '9')
			v |= (unsigned)(h - '0');
		else if (h >= 'a' && h <= 'f')
			v |= (unsigned)(h - 'a' + 10);
		else if (h >= 'A' && h <= 'F')
			v |= (unsigned)(h - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Checks the escape at s[i] == '\\'; returns its length in bytes (2, 6 or 12) or 0 (err set),
 * and its code point in *cp (for \uXXXX and surrogate pairs). */
static size_t read_escape(struct checker *c, size_t i, size_t start, uint32_t *cp)
{
	const unsigned char *s = c->s;
	unsigned hi, lo;

	if (i + 1 >= c->len) {
		fail(c, "unterminated string starting at byte %zu", start);
		return 0;
	}
	switch (s[i + 1]) {
	case '"': *cp = '"'; return 2;
	case '\\': *cp = '\\'; return 2;
	case '/': *cp = '/'; return 2;
	case 'b': *cp = '\b'; return 2;
	case 'f': *cp = '\f'; return 2;
	case 'n': *cp = '\n'; return 2;
	case 'r': *cp = '\r'; return 2;
	case 't': *cp = '\t'; return 2;
	case 'u': break;
	default: {
		char buf[32];
		fail(c, "invalid escape at byte %zu: a backslash before %s", i,
		     describe(c, i + 1, buf));
		return 0;
	}
	}
	if (i + 6 > c->len || hex4(s + i + 2, &hi) != 0) {
		fail(c, "invalid \\u escape at byte %zu (four hex digits must follow \\u)", i);
		return 0;
	}
	if (hi == 0) {
		fail(c, "NUL character (\\u0000) in a string at byte %zu", i);
		return 0;
	}
	if (hi >= 0xDC00 && hi <= 0xDFFF) {
		fail(c, "UTF-16 low surrogate escape \\u%04X at byte %zu without a high surrogate "
		     "(\\uD800-\\uDBFF) before it", hi, i);
		return 0;
	}
	if (hi < 0xD800 || hi > 0xDBFF) {
		*cp = hi;
		return 6;
	}
	if (i + 12 > c->len || s[i + 6] != '\\' || s[i + 7] != 'u' ||
	    hex4(s + i + 8, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
		fail(c, "lone UTF-16 high surrogate escape \\u%04X at byte %zu (a low surrogate "
		     "\\uDC00-\\uDFFF must follow it)", hi, i);
		return 0;
	}
	*cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
	return 12;
}

static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Reads the string whose opening quote is at c->i and leaves c->i after its closing quote.
 * With key, also decodes it (a member name). */
static int read_string(struct checker *c, struct key *key)
{
	const unsigned char *s = c->s;
	size_t start = c->i, i = start + 1, end;
	int escaped = 0;
	uint32_t cp;

	for (;;) {
		unsigned char ch;
		size_t n;

		if (i >= c->len)
			return fail(c, "unterminated string starting at byte %zu", start);
		ch = s[i];
		if (ch == '"')
			break;
		if (ch == '\\') {
			n = read_escape(c, i, start, &cp);
			if (!n)
				return -1;
			escaped = 1;
			i += n;
		} else if (ch == 0) {
			return fail(c, "NUL byte (0x00) in a string at byte %zu", i);
		} else if (ch < 0x20) {
			static const char *const names[] = {[8] = "\\b", [9] = "\\t", [10] = "\\n",
							    [12] = "\\f", [13] = "\\r"};
			char u[8];
			snprintf(u, sizeof(u), "\\u%04x", ch);
			return fail(c, "raw control byte 0x%02x in a string at byte %zu (escape it as "
				    "%s)", ch, i, ch < 14 && names[ch] ? names[ch] : u);
		} else if (ch < 0x80) {
			i++;
		} else {
			n = utf8_seq(s + i, c->len - i);
			if (!n)
				return fail(c, "invalid UTF-8 at byte %zu", i);
			i += n;
		}
	}
	end = i;
	c->i = end + 1;
	if (!key)
		return 0;
	key->off = start;
	if (!escaped) {
		key->p = (const char *)s + start + 1;
		key->len = end - start - 1;
		return 0;
	}
	/* Every name decodes to at most its raw length, and names do not overlap, so the
	 * bytes from the first escaped name to the end bound all of them: one allocation. */
	if (!c->arena) {
		c->arena_cap = c->len - start;
		c->arena = malloc(c->arena_cap);
		if (!c->arena)
			return fail(c, "out of memory checking JSON at byte %zu", start);
	}
	key->p = c->arena + c->arena_used;
	key->len = 0;
	for (i = start + 1; i < end;) {
		char *o = c->arena + c->arena_used;
		size_t n;
		if (s[i] == '\\') {
			n = read_escape(c, i, start, &cp); /* checked above: cannot fail */
			i += n;
			n = put_utf8(o, cp);
		} else {
			*o = (char)s[i++];
			n = 1;
		}
		c->arena_used += n;
		key->len += n;
	}
	return 0;
}

static int read_number(struct checker *c)
{
	const unsigned char *s = c->s;
	size_t start = c->i, i = start, n = c->len;

#define DIGIT(k) ((k) < n && s[k] >= '0' && s[k] <= '9')
	if (s[i] == '-')
		i++;
	if (n - i >= 8 && memcmp(s + i, "Infinity", 8) == 0)
		return fail(c, "NaN or Infinity at byte %zu (not JSON numbers)", start);
	if (!DIGIT(i))
		return fail(c, "'-' without digits at byte %zu", start);
	if (s[i] == '0') {
		i++;
		if (DIGIT(i))
			return fail(c, "number with a leading zero at byte %zu", start);
		if (i < n && (s[i] == 'x' || s[i] == 'X'))
			return fail(c, "hexadecimal number at byte %zu (JSON numbers are decimal)",
				    start);
	} else {
		while (DIGIT(i))
			i++;
	}
	if (i < n && s[i] == '.') {
		i++;
		if (!DIGIT(i))
			return fail(c, "number with no digit after '.' at byte %zu", start);
		while (DIGIT(i))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (!DIGIT(i))
			return fail(c, "number with an empty exponent at byte %zu", start);
		while (DIGIT(i))
			i++;
	}
#undef DIGIT
	c->i = i;
	return 0;
}

/* A value that is not an object, array or string. */
static int read_scalar(struct checker *c)
{
	static const char *const lits[] = {"true", "false", "null"};
	unsigned char ch = c->s[c->i];
	char buf[32];

	if (ch == '-' || (ch >= '0' && ch <= '9'))
		return read_number(c);
	if (ch == '+')
		return fail(c, "number with a leading '+' at byte %zu", c->i);
	if (ch == '.')
		return fail(c, "number without a digit before '.' at byte %zu", c->i);
	if ((c->len - c->i >= 3 && memcmp(c->s + c->i, "NaN", 3) == 0) ||
	    (c->len - c->i >= 8 && memcmp(c->s + c->i, "Infinity", 8) == 0))
		return fail(c, "NaN or Infinity at byte %zu (not JSON numbers)", c->i);
	for (size_t k = 0; k < 3; k++) {
		size_t l = strlen(lits[k]);
		if (ch == (unsigned char)lits[k][0]) {
			if (c->len - c->i < l || memcmp(c->s + c->i, lits[k], l) != 0)
				break;
			c->i += l;
			return 0;
		}
	}
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
		return fail(c, "unknown literal at byte %zu (only true, false and null)", c->i);
	return fail(c, "expected a value at byte %zu, found %s", c->i, describe(c, c->i, buf));
}

static int push(struct checker *c, unsigned char kind)
{
	if (c->depth >= (size_t)c->max_depth)
		return fail(c, "nesting deeper than %d levels at byte %zu", c->max_depth, c->i);
	if (c->depth == c->stack_cap) {
		size_t ncap = c->stack_cap ? c->stack_cap * 2 : 16;
		struct frame *n = realloc(c->stack, ncap * sizeof(*n));
		if (!n)
			return fail(c, "out of memory checking JSON at byte %zu", c->i);
		c->stack = n;
		c->stack_cap = ncap;
	}
	c->stack[c->depth].open_off = c->i;
	c->stack[c->depth].key_base = c->n_keys;
	c->stack[c->depth].kind = kind;
	c->depth++;
	c->i++;
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = n ? memcmp(x->p, y->p, n) : 0;

	if (r)
		return r;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

static int same_name(const struct key *x, const struct key *y)
{
	return x->len == y->len && (x->len == 0 || memcmp(x->p, y->p, x->len) == 0);
}

/* The object on top of the stack closes: its names must differ. Reports the earliest
 * second occurrence. */
static int check_duplicates(struct checker *c)
{
	size_t base = c->stack[c->depth - 1].key_base, n = c->n_keys - base;
	struct key *k = c->keys + base;
	const struct key *dup = NULL;
	char shown[JSON_STRICT_KEY_SHOWN_MAX + 1];

	if (n == 2) {
		if (same_name(&k[0], &k[1]))
			dup = &k[1];
	} else if (n > 2) {
		qsort(k, n, sizeof(*k), key_cmp);
		for (size_t j = 1; j < n; j++)
			if (same_name(&k[j - 1], &k[j]) && (!dup || k[j].off < dup->off))
				dup = &k[j];
	}
	c->n_keys = base;
	if (!dup)
		return 0;
	show_key(dup->p, dup->len, shown);
	return fail(c, "duplicate key \"%s\" in an object at byte %zu (readers disagree on which "
		    "one wins)", shown, dup->off);
}

static int add_key(struct checker *c, const struct key *k)
{
	if (c->n_keys == c->keys_cap) {
		size_t ncap = c->keys_cap ? c->keys_cap * 2 : 32;
		struct key *n = realloc(c->keys, ncap * sizeof(*n));
		if (!n)
			return fail(c, "out of memory checking JSON at byte %zu", k->off);
		c->keys = n;
		c->keys_cap = ncap;
	}
	c->keys[c->n_keys++] = *k;
	/* a top-level member the caller wants the span of */
	if (c->depth == 1 && c->want) {
		c->want_idx = -1;
		for (long w = 0; c->want[w]; w++) {
			if (strlen(c->want[w]) == k->len && memcmp(c->want[w], k->p, k->len) == 0) {
				c->want_idx = w;
				break;
			}
		}
	}
	return 0;
}

/* A value ended at byte end: if it is a wanted top-level member's, its span is known. */
static void value_end(struct checker *c, size_t end)
{
	if (c->depth == 1 && c->want_idx >= 0) {
		struct json_strict_span *sp = &c->spans[c->want_idx];
		sp->len = end - sp->off;
		c->want_idx = -1;
	}
}

static int run(struct checker *c)
{
	enum { S_VALUE, S_ARRAY_OPEN, S_ELEMENT, S_OBJECT_OPEN, S_KEY, S_COLON, S_AFTER } st;
	char buf[32];

	if (c->len >= 3 && memcmp(c->s, "\xEF\xBB\xBF", 3) == 0)
		return fail(c, "byte order mark at byte 0 (JSON text must not start with one)");
	skip_ws(c);
	if (c->i >= c->len)
		return fail(c, "no JSON value at byte %zu (the input is empty or only whitespace)",
			    c->i);
	st = S_VALUE;
	for (;;) {
		struct key k;
		unsigned char ch;

		skip_ws(c);
		ch = c->i < c->len ? c->s[c->i] : 0; /* 0 is no structural byte */
		switch (st) {
		case S_VALUE:
			if (c->i >= c->len)
				return fail(c, "expected a value at byte %zu, found the end of the "
					    "input", c->i);
			if (c->depth == 1 && c->want_idx >= 0)
				c->spans[c->want_idx].off = c->i;
			if (ch == '{' || ch == '[') {
				if (push(c, ch == '{' ? KIND_OBJECT : KIND_ARRAY))
					return -1;
				st = ch == '{' ? S_OBJECT_OPEN : S_ARRAY_OPEN;
				break;
			}
			if (ch == '"' ? read_string(c, NULL) : read_scalar(c))
				return -1;
			value_end(c, c->i);
			st = S_AFTER;
			break;
		case S_ARRAY_OPEN:
		case S_ELEMENT:
			if (ch != ']') {
				st = S_VALUE;
				break;
			}
			if (st == S_ELEMENT)
				return fail(c, "trailing comma before ']' at byte %zu", c->i);
			c->i++;
			c->depth--;
			value_end(c, c->i);
			st = S_AFTER;
			break;
		case S_OBJECT_OPEN:
			if (ch == '}') {
				c->i++;
				c->depth--;
				value_end(c, c->i);
				st = S_AFTER;
				break;
			}
			st = S_KEY;
			/* fall through */
		case S_KEY:
			if (ch == '}')
				return fail(c, "trailing comma before '}' at byte %zu", c->i);
			if (ch != '"')
				return fail(c, "expected a member name (a string) at byte %zu, found %s",
					    c->i, describe(c, c->i, buf));
			if (read_string(c, &k) || add_key(c, &k))
				return -1;
			st = S_COLON;
			break;
		case S_COLON:
			if (ch != ':')
				return fail(c, "expected ':' after a member name at byte %zu, found %s",
					    c->i, describe(c, c->i, buf));
			c->i++;
			st = S_VALUE;
			break;
		case S_AFTER:
			if (c->depth == 0)
				goto done;
			if (c->stack[c->depth - 1].kind == KIND_ARRAY) {
				if (ch == ',') {
					c->i++;
					st = S_ELEMENT;
				} else if (ch == ']') {
					c->i++;
					c->depth--;
					value_end(c, c->i);
				} else {
					return fail(c, "expected ',' or ']' at byte %zu (in the array "
						    "opened at byte %zu), found %s", c->i,
						    c->stack[c->depth - 1].open_off,
						    describe(c, c->i, buf));
				}
			} else {
				if (ch == ',') {
					c->i++;
					st = S_KEY;
				} else if (ch == '}') {
					if (check_duplicates(c))
						return -1;
					c->i++;
					c->depth--;
					value_end(c, c->i);
				} else {
					return fail(c, "expected ',' or '}' at byte %zu (in the object "
						    "opened at byte %zu), found %s", c->i,
						    c->stack[c->depth - 1].open_off,
						    describe(c, c->i, buf));
				}
			}
			break;
		}
	}
done:
	if (c->i < c->len)
		return fail(c, "bytes after the JSON value at byte %zu (one job per list element)",
			    c->i);
	return 0;
}

int json_strict_check(const char *bytes, size_t len, const struct json_strict_opts *opts,
		      char *err, size_t errlen)
{
	struct checker c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.s = (const unsigned char *)(bytes ? bytes : "");
	c.len = bytes ? len : 0;
	c.err = err;
	c.errlen = err ? errlen : 0;
	c.max_depth = opts && opts->max_depth > 0 ? opts->max_depth : JSON_STRICT_DEPTH_MAX;
	c.spans = opts ? opts->spans : NULL;
	c.want = c.spans ? opts->want : NULL;
	c.want_idx = -1;
	if (c.errlen)
		err[0] = '\0';
	for (size_t w = 0; c.want && c.want[w]; w++)
		c.spans[w].off = c.spans[w].len = 0;
	rc = run(&c);
	for (size_t w = 0; rc && c.want && c.want[w]; w++)
		c.spans[w].off = c.spans[w].len = 0;
	free(c.stack);
	free(c.keys);
	free(c.arena);
	return rc;
}

size_t json_strict_minify(char *s, size_t len)
{
	size_t r, w = 0;
	int in_string = 0, escaped = 0;

	for (r = 0; r < len; r++) {
		char c = s[r];
		if (in_string) {
			/* a backslash escapes exactly the next byte: in "\\" the second one is
			 * escaped and escapes nothing */
			if (escaped)
				escaped = 0;
			else if (c == '\\')
				escaped = 1;
			else if (c == '"')
				in_string = 0;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			continue; /* RFC 8259's four whitespace bytes, only ever between tokens */
		} else if (c == '"') {
			in_string = 1;
		}
		s[w++] = c;
	}
	s[w] = '\0';
	return w;
}
