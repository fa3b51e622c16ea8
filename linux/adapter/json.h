/*
 * A small JSON reader and writer for the adapter protocol (conformance/INTERPRETING.md section 3): one message per
 * line, u64 values as "0x..." strings. Not a general JSON library: numbers are integers, strings are bytes.
 */
#ifndef IOASID_JSON_H
#define IOASID_JSON_H
#include <stddef.h>
#include <stdint.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jtype t;
	long long n; /* J_NUM, J_BOOL */
	char *s; /* J_STR */
	size_t len; /* J_ARR, J_OBJ: number of children */
	char **keys; /* J_OBJ */
	struct jv **vals; /* J_ARR, J_OBJ */
};

/* Parses `text` (NUL-terminated); returns NULL and sets *err on malformed input. */
struct jv *json_parse(const char *text, const char **err);
void json_free(struct jv *v);
/* Member `key` of an object, or NULL. */
struct jv *jget(const struct jv *o, const char *key);
/*
 * A u64 field: "0x..." or decimal string, or a non-negative integer. Returns 0 when present and valid (value in
 * *out), 1 when absent, -1 when malformed.
 */
int ju64(const struct jv *v, uint64_t *out);

/* A growable output buffer. */
struct sb {
	char *p;
	size_t len, cap;
};
void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_str(struct sb *b, const char *s); /* a JSON string literal, escaped */
void sb_reset(struct sb *b);
#endif
