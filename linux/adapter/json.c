/* See json.h. */
#include "json.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const char *p;
	const char *err;
	int depth;
};

static void ws(struct parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
		ps->p++;
}

static struct jv *node(enum jtype t)
{
	struct jv *v = calloc(1, sizeof(*v));
	if (!v)
		abort();
	v->t = t;
	return v;
}

static void push(struct jv *c, char *key, struct jv *val)
{
	c->vals = realloc(c->vals, (c->len + 1) * sizeof(*c->vals));
	if (!c->vals)
		abort();
	if (c->t == J_OBJ) {
		c->keys = realloc(c->keys, (c->len + 1) * sizeof(*c->keys));
		if (!c->keys)
			abort();
		c->keys[c->len] = key;
	}
	c->vals[c->len++] = val;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static char *pstring(struct parser *ps)
{
	size_t cap = 16, n = 0;
	char *s = malloc(cap);
	if (!s)
		abort();
	ps->p++; /* opening quote */
	for (;;) {
		char c = *ps->p++;
		if (c == '\0') {
			ps->err = "unterminated string";
			free(s);
			return NULL;
		}
		if (c == '"')
			break;
		if (c == '\\') {
			char e = *ps->p++;
			switch (e) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': {
				int v = 0;
				for (int i = 0; i < 4; i++) {
					int h = hexval(*ps->p++);
					if (h < 0) {
						ps->err = "bad \\u escape";
						free(s);
						return NULL;
					}
					v = v * 16 + h;
				}
				c = v < 0x80 ? (char)v : '?';
				break;
			}
			case '"': case '\\': case '/': c = e; break;
			default:
				ps->err = "bad escape";
				free(s);
				return NULL;
			}
		}
		if (n + 2 > cap) {
			cap *= 2;
			s = realloc(s, cap);
			if (!s)
				abort();
		}
		s[n++] = c;
	}
	s[n] = '\0';
	return s;
}

static struct jv *pvalue(struct parser *ps)
{
	ws(ps);
	if (++ps->depth > 64) {
		ps->err = "nested too deeply";
		return NULL;
	}
	struct jv *v = NULL;
	char c = *ps->p;
	if (c == '{' || c == '[') {
		int obj = c == '{';
		v = node(obj ? J_OBJ : J_ARR);
		ps->p++;
		ws(ps);
		if (*ps->p == (obj ? '}' : ']')) {
			ps->p++;
			goto out;
		}
		for (;;) {
			char *key = NULL;
			ws(ps);
			if (obj) {
				if (*ps->p != '"') {
					ps->err = "expected a key";
					goto bad;
				}
				key = pstring(ps);
				if (!key)
					goto bad;
				ws(ps);
				if (*ps->p++ != ':') {
					free(key);
					ps->err = "expected ':'";
					goto bad;
				}
			}
			struct jv *e = pvalue(ps);
			if (!e) {
				free(key);
				goto bad;
			}
			push(v, key, e);
			ws(ps);
			if (*ps->p == ',') {
				ps->p++;
				continue;
			}
			if (*ps->p == (obj ? '}' : ']')) {
				ps->p++;
				break;
			}
			ps->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
			goto bad;
		}
	} else if (c == '"') {
		char *s = pstring(ps);
		if (!s)
			goto bad;
		v = node(J_STR);
		v->s = s;
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		char *end;
		v = node(J_NUM);
		v->n = strtoll(ps->p, &end, 10);
		if (*end == '.' || *end == 'e' || *end == 'E') {
			ps->err = "non-integer number";
			goto bad;
		}
		ps->p = end;
	} else if (!strncmp(ps->p, "true", 4)) {
		v = node(J_BOOL);
		v->n = 1;
		ps->p += 4;
	} else if (!strncmp(ps->p, "false", 5)) {
		v = node(J_BOOL);
		ps->p += 5;
	} else if (!strncmp(ps->p, "null", 4)) {
		v = node(J_NULL);
		ps->p += 4;
	} else {
		ps->err = "unexpected character";
		return NULL;
	}
out:
	ps->depth--;
	return v;
bad:
	json_free(v);
	return NULL;
}

struct jv *json_parse(const char *text, const char **err)
{
	struct parser ps = { .p = text };
	struct jv *v = pvalue(&ps);
	if (v) {
		ws(&ps);
		if (*ps.p != '\0') {
			ps.err = "trailing characters";
			json_free(v);
			v = NULL;
		}
	}
	if (!v)
		*err = ps.err ? ps.err : "malformed JSON";
	return v;
}

void json_free(struct jv *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->len; i++) {
		json_free(v->vals[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->vals);
	free(v->keys);
	free(v->s);
	free(v);
}

struct jv *jget(const struct jv *o, const char *key)
{
	if (!o || o->t != J_OBJ)
		return NULL;
	for (size_t i = 0; i < o->len; i++)
		if (!strcmp(o->keys[i], key))
			return o->vals[i];
	return NULL;
}

int ju64(const struct jv *v, uint64_t *out)
{
	if (!v)
		return 1;
	if (v->t == J_NUM) {
		if (v->n < 0)
			return -1;
		*out = (uint64_t)v->n;
		return 0;
	}
	if (v->t != J_STR || v->s[0] == '\0')
		return -1;
	const char *s = v->s;
	uint64_t r = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		if (!*s || strlen(s) > 16)
			return -1;
		for (; *s; s++) {
			int h = hexval(*s);
			if (h < 0)
				return -1;
			r = r << 4 | (uint64_t)h;
		}
	} else {
		for (; *s; s++) {
			if (*s < '0' || *s > '9')
				return -1;
			uint64_t d = (uint64_t)(*s - '0');
			if (r > (UINT64_MAX - d) / 10)
				return -1;
			r = r * 10 + d;
		}
	}
	*out = r;
	return 0;
}

void sb_printf(struct sb *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		size_t room = b->cap - b->len;
		int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			abort();
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		b->cap = (b->cap + (size_t)n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
}

void sb_str(struct sb *b, const char *s)
{
	sb_printf(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			sb_printf(b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			sb_printf(b, "\\u%04x", c);
		else
			sb_printf(b, "%c", c);
	}
	sb_printf(b, "\"");
}

void sb_reset(struct sb *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}
