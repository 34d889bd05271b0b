/*
 * pickle.c — a restricted unpickler for the data.pkl of torch.save files (weights_private.h).
 *
 * It interprets the opcodes torch.save emits (protocol 2, plus the protocol 4 framing/memo
 * opcodes) into a small object tree. GLOBAL/STACK_GLOBAL resolve only an allowlist (tensor and
 * storage rebuilders, OrderedDict, data-only classes); REDUCE/NEWOBJ/BUILD on them are emulated
 * in C and nothing is ever executed. Anything else — os.system, builtins.eval, subprocess.* — is
 * refused with an error naming the global. The machine is iterative (no recursion); the stack,
 * memo and object memory are bounded in proportion to the input, and every opcode costs O(1)
 * amortised, so hostile input cannot crash, hang or exhaust memory.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "weights_private.h"

/* Object memory limit: 64 bytes of objects per input byte + 1 MiB. A real data.pkl allocates about
 * 8 bytes per byte (one 32-byte object per ~4-byte opcode), so this leaves 8x headroom while a
 * hostile 1 MB pickle can take at most 65 MB. */
#define PK_MEM_PER_BYTE 64
#define PK_MEM_BASE ((size_t)1 << 20)
#define PK_MAX_GLOBAL_NAME 256

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
};

struct pk_machine {
    const uint8_t *data;
    size_t len, pos;
    struct arena_block *blocks;
    size_t mem_used, mem_limit;
    struct pk_obj **stack;
    size_t n_stack, cap_stack;
    size_t *marks;
    size_t n_marks, cap_marks;
    struct pk_obj **memo;
    size_t cap_memo, n_memo, memo_limit;
    size_t op_at; /* offset of the opcode being run, for messages */
};

static void *pk_alloc(struct pk_machine *m, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n > m->mem_limit - m->mem_used) {
        error_set(WV_EFORMAT, "pickle: object memory limit (%zu bytes) exceeded at offset %zu",
                  m->mem_limit, m->op_at);
        return NULL;
    }
    struct arena_block *b = m->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof *b + cap);
        if (!b) {
            error_set(WV_ENOMEM, "pickle: out of memory");
            return NULL;
        }
        b->used = 0;
        b->cap = cap;
        b->next = m->blocks;
        m->blocks = b;
    }
    void *p = b->mem + b->used;
    b->used += n;
    m->mem_used += n;
    memset(p, 0, n);
    return p;
}

static struct pk_obj *new_obj(struct pk_machine *m, enum pk_kind k)
{
    struct pk_obj *o = pk_alloc(m, sizeof *o);
    if (o) o->kind = k;
    return o;
}

void pk_free(struct pk_machine *m)
{
    if (!m) return;
    while (m->blocks) {
        struct arena_block *b = m->blocks;
        m->blocks = b->next;
        free(b);
    }
    free(m->stack);
    free(m->marks);
    free(m->memo);
    free(m);
}

static const char *kind_name(enum pk_kind k)
{
    static const char *const names[] = {"None",   "bool",    "int",     "float",  "str",
                                        "bytes",  "tuple",   "list",    "dict",   "global",
                                        "storage", "tensor", "object"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

/* ---- stack --------------------------------------------------------------------------------- */

static enum wv_status push(struct pk_machine *m, struct pk_obj *o)
{
    if (!o) return error_code() ? error_code() : WV_ENOMEM;
    if (m->n_stack == m->cap_stack) {
        size_t cap = m->cap_stack ? m->cap_stack * 2 : 64;
        /* every push consumes at least one input byte, so the stack cannot outgrow the input */
        struct pk_obj **s = realloc(m->stack, cap * sizeof *s);
        if (!s) return error_set(WV_ENOMEM, "pickle: out of memory for the stack");
        m->stack = s;
        m->cap_stack = cap;
    }
    m->stack[m->n_stack++] = o;
    return WV_OK;
}

static size_t top_mark(const struct pk_machine *m) { return m->n_marks ? m->marks[m->n_marks - 1] : 0; }

static struct pk_obj *pop(struct pk_machine *m)
{
    /* never pop below the innermost mark: Python's unpickler treats that as a stack underflow */
    if (m->n_stack <= top_mark(m) || m->n_stack == 0) {
        error_set(WV_EFORMAT, "pickle: stack underflow at offset %zu", m->op_at);
        return NULL;
    }
    return m->stack[--m->n_stack];
}

static struct pk_obj *top(struct pk_machine *m)
{
    if (m->n_stack <= top_mark(m) || m->n_stack == 0) {
        error_set(WV_EFORMAT, "pickle: stack underflow at offset %zu", m->op_at);
        return NULL;
    }
    return m->stack[m->n_stack - 1];
}

/* Items above the innermost mark: *first = index of the first, returns their count; the mark is
 * removed (the caller truncates the stack). */
static enum wv_status pop_mark(struct pk_machine *m, size_t *first)
{
    if (!m->n_marks) return error_set(WV_EFORMAT, "pickle: no MARK before offset %zu", m->op_at);
    *first = m->marks[--m->n_marks];
    return WV_OK;
}

/* ---- memo ---------------------------------------------------------------------------------- */

static enum wv_status memo_put(struct pk_machine *m, uint64_t id)
{
    struct pk_obj *o = top(m);
    if (!o) return WV_EFORMAT;
    if (id >= m->memo_limit)
        return error_set(WV_EFORMAT, "pickle: memo index %llu too large at offset %zu",
                         (unsigned long long)id, m->op_at);
    if (id >= m->cap_memo) {
        size_t cap = m->cap_memo ? m->cap_memo : 64;
        while (cap <= id) cap *= 2;
        struct pk_obj **mm = realloc(m->memo, cap * sizeof *mm);
        if (!mm) return error_set(WV_ENOMEM, "pickle: out of memory for the memo");
        memset(mm + m->cap_memo, 0, (cap - m->cap_memo) * sizeof *mm);
        m->memo = mm;
        m->cap_memo = cap;
    }
    if (!m->memo[id]) m->n_memo++;
    m->memo[id] = o;
    return WV_OK;
}

static enum wv_status memo_get(struct pk_machine *m, uint64_t id)
{
    if (id >= m->cap_memo || !m->memo[id])
        return error_set(WV_EFORMAT, "pickle: memo entry %llu undefined at offset %zu",
                         (unsigned long long)id, m->op_at);
    return push(m, m->memo[id]);
}

/* ---- reading ------------------------------------------------------------------------------- */

static int need(struct pk_machine *m, size_t n)
{
    if (n > m->len - m->pos) {
        error_set(WV_EFORMAT, "pickle: truncated at offset %zu (opcode needs %zu more bytes)",
                  m->op_at, n);
        return -1;
    }
    return 0;
}

static uint64_t rd_le(struct pk_machine *m, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)m->data[m->pos + i] << (8 * i);
    m->pos += n;
    return v;
}

static struct pk_obj *new_str(struct pk_machine *m, enum pk_kind k, size_t n)
{
    if (need(m, n)) return NULL;
    struct pk_obj *o = new_obj(m, k);
    if (!o) return NULL;
    char *s = pk_alloc(m, n + 1); /* NUL-terminated copy so names can be used as C strings */
    if (!s) return NULL;
    memcpy(s, m->data + m->pos, n);
    o->u.str.s = s;
    o->u.str.len = n;
    m->pos += n;
    return o;
}

static int str_is(const struct pk_obj *o, const char *s)
{
    return o && o->kind == PK_STR && o->u.str.len == strlen(s) && !memcmp(o->u.str.s, s, o->u.str.len);
}

/* ---- containers ---------------------------------------------------------------------------- */

static struct pk_obj *new_seq(struct pk_machine *m, enum pk_kind k, struct pk_obj **items, size_t n)
{
    struct pk_obj *o = new_obj(m, k);
    if (!o) return NULL;
    if (n) {
        o->u.seq.items = pk_alloc(m, n * sizeof *items);
        if (!o->u.seq.items) return NULL;
        memcpy(o->u.seq.items, items, n * sizeof *items);
    }
    o->u.seq.n = o->u.seq.cap = n;
    return o;
}

/* Append n pointers to a growable arena array (old storage is abandoned; doubling keeps the
 * waste under 2x and is counted in the memory limit). */
static enum wv_status grow_append(struct pk_machine *m, struct pk_obj ***arr, size_t *len,
                                  size_t *cap, struct pk_obj **items, size_t n)
{
    if (n == 0) return WV_OK; /* (and *arr may still be NULL) */
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 8;
        while (c < *len + n) c *= 2;
        struct pk_obj **a = pk_alloc(m, c * sizeof *a);
        if (!a) return error_code();
        if (*len) memcpy(a, *arr, *len * sizeof *a);
        *arr = a;
        *cap = c;
    }
    memcpy(*arr + *len, items, n * sizeof *items);
    *len += n;
    return WV_OK;
}

struct pk_obj *pk_dict_get(const struct pk_obj *d, const char *key)
{
    if (!d || d->kind != PK_DICT) return NULL;
    struct pk_obj *found = NULL;
    for (size_t i = 0; i < d->u.dict.n; i++) /* the last one wins, as in Python */
        if (str_is(d->u.dict.kv[2 * i], key)) found = d->u.dict.kv[2 * i + 1];
    return found;
}

/* ---- globals ------------------------------------------------------------------------------- */

static const struct {
    const char *module, *name;
    enum pk_global g;
    enum weights_dtype dtype;
} ALLOWED[] = {
    {"torch._utils", "_rebuild_tensor_v2", PKG_REBUILD_TENSOR_V2, WDT_F32},
    {"torch._utils", "_rebuild_parameter", PKG_REBUILD_PARAMETER, WDT_F32},
    {"torch._utils", "_rebuild_parameter_with_state", PKG_REBUILD_PARAMETER_STATE, WDT_F32},
    {"collections", "OrderedDict", PKG_ORDERED_DICT, WDT_F32},
    {"torch", "FloatStorage", PKG_STORAGE, WDT_F32},
    {"torch", "HalfStorage", PKG_STORAGE, WDT_F16},
    {"torch", "BFloat16Storage", PKG_STORAGE, WDT_BF16},
    {"torch", "DoubleStorage", PKG_STORAGE, WDT_F64},
    {"torch", "LongStorage", PKG_STORAGE, WDT_I64},
    {"torch", "IntStorage", PKG_STORAGE, WDT_I32},
    {"torch", "ByteStorage", PKG_STORAGE, WDT_U8},
    {"torch", "BoolStorage", PKG_STORAGE, WDT_BOOL},
    /* dtype objects (torch >= 1.12 may pickle them in tensor metadata) */
    {"torch", "float32", PKG_INERT, WDT_F32},
    {"torch", "float16", PKG_INERT, WDT_F16},
    {"torch", "bfloat16", PKG_INERT, WDT_BF16},
    {"torch", "float64", PKG_INERT, WDT_F64},
    {"torch", "int64", PKG_INERT, WDT_I64},
    {"torch", "int32", PKG_INERT, WDT_I32},
    {"torch", "uint8", PKG_INERT, WDT_U8},
    {"torch", "bool", PKG_INERT, WDT_BOOL},
    /* data-only classes seen beside the weights in training checkpoints (VMAMBA_SPEC.md §7:
     * 'config' is a yacs CfgNode; numpy scalars for accuracies). Calling them is emulated as an
     * opaque object that is never looked into. */
    {"yacs.config", "CfgNode", PKG_INERT, WDT_F32},
    {"argparse", "Namespace", PKG_INERT, WDT_F32},
    {"torch.torch_version", "TorchVersion", PKG_INERT, WDT_F32},
    {"numpy.core.multiarray", "scalar", PKG_INERT, WDT_F32},
    {"numpy", "dtype", PKG_INERT, WDT_F32},
    {"_codecs", "encode", PKG_INERT, WDT_F32},
};

static enum wv_status push_global(struct pk_machine *m, const char *mod, size_t mod_len,
                                  const char *name, size_t name_len)
{
    for (size_t i = 0; i < sizeof ALLOWED / sizeof ALLOWED[0]; i++)
        if (strlen(ALLOWED[i].module) == mod_len && !memcmp(ALLOWED[i].module, mod, mod_len) &&
            strlen(ALLOWED[i].name) == name_len && !memcmp(ALLOWED[i].name, name, name_len)) {
            struct pk_obj *o = new_obj(m, PK_GLOBAL);
            if (!o) return error_code();
            o->u.glob.g = ALLOWED[i].g;
            o->u.glob.dtype = ALLOWED[i].dtype;
            o->u.glob.name = ALLOWED[i].name;
            return push(m, o);
        }
    /* print the refused name safely: non-printable bytes as '?' */
    char shown[2 * PK_MAX_GLOBAL_NAME + 2];
    size_t k = 0;
    for (size_t i = 0; i < mod_len && k < PK_MAX_GLOBAL_NAME; i++)
        shown[k++] = (mod[i] >= 32 && mod[i] < 127) ? mod[i] : '?';
    shown[k++] = '.';
    for (size_t i = 0; i < name_len && k < 2 * PK_MAX_GLOBAL_NAME + 1; i++)
        shown[k++] = (name[i] >= 32 && name[i] < 127) ? name[i] : '?';
    shown[k] = 0;
    return error_set(WV_EFORMAT,
                     "pickle: refusing global %s at offset %zu (only torch tensor/storage "
                     "rebuilders, collections.OrderedDict and data-only classes are allowed)",
                     shown, m->op_at);
}

static enum wv_status op_global(struct pk_machine *m)
{
    /* "module\nname\n" */
    const char *p = (const char *)m->data + m->pos;
    size_t left = m->len - m->pos;
    const char *nl1 = memchr(p, '\n', left < PK_MAX_GLOBAL_NAME ? left : PK_MAX_GLOBAL_NAME);
    if (!nl1) return error_set(WV_EFORMAT, "pickle: bad GLOBAL at offset %zu", m->op_at);
    size_t mod_len = (size_t)(nl1 - p);
    const char *q = nl1 + 1;
    left -= mod_len + 1;
    const char *nl2 = memchr(q, '\n', left < PK_MAX_GLOBAL_NAME ? left : PK_MAX_GLOBAL_NAME);
    if (!nl2) return error_set(WV_EFORMAT, "pickle: bad GLOBAL at offset %zu", m->op_at);
    size_t name_len = (size_t)(nl2 - q);
    m->pos += mod_len + name_len + 2;
    return push_global(m, p, mod_len, q, name_len);
}

static int get_int(const struct pk_obj *o, int64_t *v)
{
    if (!o) return -1;
    if (o->kind == PK_INT) *v = o->u.i;
    else if (o->kind == PK_BOOL) *v = o->u.b;
    else return -1;
    return 0;
}

static enum wv_status rebuild_tensor(struct pk_machine *m, struct pk_obj *args, struct pk_obj **out)
{
    if (args->kind != PK_TUPLE || args->u.seq.n < 4)
        return error_set(WV_EFORMAT, "pickle: _rebuild_tensor_v2 needs (storage, offset, size, "
                                     "stride, ...) at offset %zu", m->op_at);
    struct pk_obj **a = args->u.seq.items;
    if (a[0]->kind != PK_STORAGE)
        return error_set(WV_EFORMAT, "pickle: _rebuild_tensor_v2 argument 0 is a %s, not a "
                                     "storage, at offset %zu", kind_name(a[0]->kind), m->op_at);
    struct pk_tensor *t = pk_alloc(m, sizeof *t);
    if (!t) return error_code();
    t->storage = a[0];
    if (get_int(a[1], &t->offset) || t->offset < 0)
        return error_set(WV_EFORMAT, "pickle: bad tensor storage offset at offset %zu", m->op_at);
    if (a[2]->kind != PK_TUPLE || a[3]->kind != PK_TUPLE || a[2]->u.seq.n != a[3]->u.seq.n)
        return error_set(WV_EFORMAT, "pickle: tensor size/stride are not tuples of one length "
                                     "at offset %zu", m->op_at);
    if (a[2]->u.seq.n > WEIGHTS_MAX_DIMS)
        return error_set(WV_EUNSUPPORTED, "pickle: tensor with %zu dimensions (at most %d) at "
                                          "offset %zu", a[2]->u.seq.n, WEIGHTS_MAX_DIMS, m->op_at);
    t->ndim = (int)a[2]->u.seq.n;
    for (int i = 0; i < t->ndim; i++)
        if (get_int(a[2]->u.seq.items[i], &t->shape[i]) ||
            get_int(a[3]->u.seq.items[i], &t->stride[i]) || t->shape[i] < 0 || t->stride[i] < 0)
            return error_set(WV_EFORMAT, "pickle: bad tensor size/stride entry %d at offset %zu",
                             i, m->op_at);
    struct pk_obj *o = new_obj(m, PK_TENSOR);
    if (!o) return error_code();
    o->u.tensor = t;
    *out = o;
    return WV_OK;
}

/* REDUCE and NEWOBJ: call an allowlisted global, emulated. */
static enum wv_status call(struct pk_machine *m, struct pk_obj *fn, struct pk_obj *args)
{
    if (fn->kind != PK_GLOBAL)
        return error_set(WV_EFORMAT, "pickle: calling a %s (not an allowed global) at offset %zu",
                         kind_name(fn->kind), m->op_at);
    if (args->kind != PK_TUPLE)
        return error_set(WV_EFORMAT, "pickle: call arguments are a %s, not a tuple, at offset %zu",
                         kind_name(args->kind), m->op_at);
    struct pk_obj *res = NULL;
    enum wv_status st = WV_OK;
    switch (fn->u.glob.g) {
    case PKG_REBUILD_TENSOR_V2: st = rebuild_tensor(m, args, &res); break;
    case PKG_REBUILD_PARAMETER:
    case PKG_REBUILD_PARAMETER_STATE:
        if (args->u.seq.n < 1 || args->u.seq.items[0]->kind != PK_TENSOR)
            return error_set(WV_EFORMAT, "pickle: _rebuild_parameter without a tensor at offset "
                                         "%zu", m->op_at);
        res = args->u.seq.items[0];
        break;
    case PKG_ORDERED_DICT: res = new_obj(m, PK_DICT); break;
    case PKG_STORAGE:
        return error_set(WV_EFORMAT, "pickle: storage class %s called directly at offset %zu",
                         fn->u.glob.name, m->op_at);
    case PKG_INERT: res = new_obj(m, PK_OPAQUE); break;
    }
    if (st) return st;
    return push(m, res);
}

/* BINPERSID: ('storage', <storage class>, key, location, numel) */
static enum wv_status persistent_load(struct pk_machine *m, struct pk_obj *pid)
{
    if (pid->kind != PK_TUPLE || pid->u.seq.n < 5 || !str_is(pid->u.seq.items[0], "storage"))
        return error_set(WV_EFORMAT, "pickle: persistent id at offset %zu is not ('storage', "
                                     "type, key, location, size)", m->op_at);
    struct pk_obj **a = pid->u.seq.items;
    if (a[1]->kind != PK_GLOBAL || a[1]->u.glob.g != PKG_STORAGE)
        return error_set(WV_EUNSUPPORTED, "pickle: persistent id at offset %zu has an "
                                          "unsupported storage type", m->op_at);
    if (a[2]->kind != PK_STR || a[2]->u.str.len == 0 || a[2]->u.str.len > 64 ||
        memchr(a[2]->u.str.s, '/', a[2]->u.str.len) || memchr(a[2]->u.str.s, 0, a[2]->u.str.len))
        return error_set(WV_EFORMAT, "pickle: bad storage key at offset %zu", m->op_at);
    int64_t numel;
    if (get_int(a[4], &numel) || numel < 0 || numel > INT64_MAX / 8)
        return error_set(WV_EFORMAT, "pickle: bad storage size at offset %zu", m->op_at);
    struct pk_obj *o = new_obj(m, PK_STORAGE);
    if (!o) return error_code();
    o->u.storage.key = a[2]->u.str.s;
    o->u.storage.dtype = a[1]->u.glob.dtype;
    o->u.storage.numel = numel;
    return push(m, o);
}

/* ---- the machine --------------------------------------------------------------------------- */

static enum wv_status step(struct pk_machine *m, int *stop)
{
    enum wv_status st = WV_OK;
    struct pk_obj *o, *a, *b;
    size_t first = 0;
    m->op_at = m->pos;
    uint8_t op = m->data[m->pos++];
    switch (op) {
    case 0x80: /* PROTO */
        if (need(m, 1)) return WV_EFORMAT;
        if (m->data[m->pos] > 5)
            return error_set(WV_EUNSUPPORTED, "pickle: protocol %d", m->data[m->pos]);
        m->pos++;
        return WV_OK;
    case 0x95: /* FRAME: a length hint only */
        if (need(m, 8)) return WV_EFORMAT;
        m->pos += 8;
        return WV_OK;
    case '.': *stop = 1; return WV_OK;
    case '}': return push(m, new_obj(m, PK_DICT));
    case ']': return push(m, new_obj(m, PK_LIST));
    case ')': return push(m, new_obj(m, PK_TUPLE));
    case 'N': return push(m, new_obj(m, PK_NONE));
    case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
        if (!(o = new_obj(m, PK_BOOL))) return error_code();
        o->u.b = op == 0x88;
        return push(m, o);
    case '(': /* MARK */
        if (m->n_marks == m->cap_marks) {
            size_t cap = m->cap_marks ? m->cap_marks * 2 : 32;
            size_t *mk = realloc(m->marks, cap * sizeof *mk);
            if (!mk) return error_set(WV_ENOMEM, "pickle: out of memory for marks");
            m->marks = mk;
            m->cap_marks = cap;
        }
        m->marks[m->n_marks++] = m->n_stack;
        return WV_OK;
    case 'X': case 0x8c: case 0x8d: case 'T': case 'U': case 'B': case 'C': case 0x8e: {
        size_t w = (op == 0x8c || op == 'U' || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
        if (need(m, w)) return WV_EFORMAT;
        uint64_t n = rd_le(m, w);
        if (op == 'T' && n > INT32_MAX) return error_set(WV_EFORMAT, "pickle: negative length");
        if (need(m, (size_t)n)) return WV_EFORMAT;
        int bytes = op == 'B' || op == 'C' || op == 0x8e;
        return push(m, new_str(m, bytes ? PK_BYTES : PK_STR, (size_t)n));
    }
    case 'J': case 'K': case 'M': { /* BININT (signed 4), BININT1, BININT2 */
        size_t w = op == 'J' ? 4 : op == 'K' ? 1 : 2;
        if (need(m, w)) return WV_EFORMAT;
        uint64_t v = rd_le(m, w);
        if (!(o = new_obj(m, PK_INT))) return error_code();
        o->u.i = op == 'J' ? (int64_t)(int32_t)(uint32_t)v : (int64_t)v;
        return push(m, o);
    }
    case 0x8a: case 0x8b: { /* LONG1, LONG4: little-endian two's complement */
        size_t w = op == 0x8a ? 1 : 4;
        if (need(m, w)) return WV_EFORMAT;
        uint64_t n = rd_le(m, w);
        if (n > 8)
            return error_set(WV_EUNSUPPORTED, "pickle: integer of %llu bytes at offset %zu",
                             (unsigned long long)n, m->op_at);
        if (need(m, (size_t)n)) return WV_EFORMAT;
        uint64_t v = rd_le(m, (size_t)n);
        if (n && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
        if (!(o = new_obj(m, PK_INT))) return error_code();
        o->u.i = (int64_t)v;
        return push(m, o);
    }
    case 'G': { /* BINFLOAT: big-endian double */
        if (need(m, 8)) return WV_EFORMAT;
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v = v << 8 | m->data[m->pos + i];
        m->pos += 8;
        if (!(o = new_obj(m, PK_FLOAT))) return error_code();
        memcpy(&o->u.f, &v, 8);
        return push(m, o);
    }
    case 't': /* TUPLE */
        if ((st = pop_mark(m, &first))) return st;
        o = new_seq(m, PK_TUPLE, m->stack + first, m->n_stack - first);
        m->n_stack = first;
        return push(m, o);
    case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
        size_t n = (size_t)(op - 0x84);
        if (m->n_stack < top_mark(m) + n)
            return error_set(WV_EFORMAT, "pickle: stack underflow at offset %zu", m->op_at);
        o = new_seq(m, PK_TUPLE, m->stack + m->n_stack - n, n);
        m->n_stack -= n;
        return push(m, o);
    }
    case 'a': /* APPEND */
        if (!(b = pop(m)) || !(a = top(m))) return WV_EFORMAT;
        if (a->kind == PK_OPAQUE) return WV_OK;
        if (a->kind != PK_LIST)
            return error_set(WV_EFORMAT, "pickle: APPEND to a %s at offset %zu", kind_name(a->kind),
                             m->op_at);
        return grow_append(m, &a->u.seq.items, &a->u.seq.n, &a->u.seq.cap, &b, 1);
    case 'e': /* APPENDS */
        if ((st = pop_mark(m, &first))) return st;
        if (first == 0 || first <= top_mark(m))
            return error_set(WV_EFORMAT, "pickle: APPENDS without a list at offset %zu", m->op_at);
        a = m->stack[first - 1];
        if (a->kind == PK_LIST)
            st = grow_append(m, &a->u.seq.items, &a->u.seq.n, &a->u.seq.cap, m->stack + first,
                             m->n_stack - first);
        else if (a->kind != PK_OPAQUE)
            st = error_set(WV_EFORMAT, "pickle: APPENDS to a %s at offset %zu", kind_name(a->kind),
                           m->op_at);
        m->n_stack = first;
        return st;
    case 's': /* SETITEM */
        if (!(b = pop(m)) || !(o = pop(m)) || !(a = top(m))) return WV_EFORMAT;
        if (a->kind == PK_OPAQUE) return WV_OK;
        if (a->kind != PK_DICT)
            return error_set(WV_EFORMAT, "pickle: SETITEM on a %s at offset %zu",
                             kind_name(a->kind), m->op_at);
        {
            struct pk_obj *kv[2] = {o, b};
            size_t n2 = a->u.dict.n * 2, cap2 = a->u.dict.cap * 2;
            st = grow_append(m, &a->u.dict.kv, &n2, &cap2, kv, 2);
            a->u.dict.n = n2 / 2;
            a->u.dict.cap = cap2 / 2;
        }
        return st;
    case 'u': /* SETITEMS */
        if ((st = pop_mark(m, &first))) return st;
        if (first == 0 || first <= top_mark(m))
            return error_set(WV_EFORMAT, "pickle: SETITEMS without a dict at offset %zu", m->op_at);
        if ((m->n_stack - first) % 2)
            return error_set(WV_EFORMAT, "pickle: SETITEMS with an odd number of items at "
                                         "offset %zu", m->op_at);
        a = m->stack[first - 1];
        if (a->kind == PK_DICT) {
            size_t n2 = a->u.dict.n * 2, cap2 = a->u.dict.cap * 2;
            st = grow_append(m, &a->u.dict.kv, &n2, &cap2, m->stack + first, m->n_stack - first);
            a->u.dict.n = n2 / 2;
            a->u.dict.cap = cap2 / 2;
        } else if (a->kind != PK_OPAQUE) {
            st = error_set(WV_EFORMAT, "pickle: SETITEMS on a %s at offset %zu",
                           kind_name(a->kind), m->op_at);
        }
        m->n_stack = first;
        return st;
    case 'q': case 'r': { /* BINPUT, LONG_BINPUT */
        size_t w = op == 'q' ? 1 : 4;
        if (need(m, w)) return WV_EFORMAT;
        return memo_put(m, rd_le(m, w));
    }
    case 0x94: /* MEMOIZE */
        return memo_put(m, m->n_memo);
    case 'h': case 'j': { /* BINGET, LONG_BINGET */
        size_t w = op == 'h' ? 1 : 4;
        if (need(m, w)) return WV_EFORMAT;
        return memo_get(m, rd_le(m, w));
    }
    case 'c': return op_global(m);
    case 0x93: /* STACK_GLOBAL */
        if (!(b = pop(m)) || !(a = pop(m))) return WV_EFORMAT;
        if (a->kind != PK_STR || b->kind != PK_STR || a->u.str.len > PK_MAX_GLOBAL_NAME ||
            b->u.str.len > PK_MAX_GLOBAL_NAME)
            return error_set(WV_EFORMAT, "pickle: STACK_GLOBAL needs two short strings at offset "
                                         "%zu", m->op_at);
        return push_global(m, a->u.str.s, a->u.str.len, b->u.str.s, b->u.str.len);
    case 'R': /* REDUCE */
    case 0x81: /* NEWOBJ */
        if (!(b = pop(m)) || !(a = pop(m))) return WV_EFORMAT;
        return call(m, a, b);
    case 'b': /* BUILD: set state; ours are emulated objects, so the state is ignored */
        if (!(b = pop(m)) || !(a = top(m))) return WV_EFORMAT;
        return WV_OK;
    case 'Q': /* BINPERSID */
        if (!(a = pop(m))) return WV_EFORMAT;
        return persistent_load(m, a);
    case '0': /* POP */
        return pop(m) ? WV_OK : WV_EFORMAT;
    case '1': /* POP_MARK */
        if ((st = pop_mark(m, &first))) return st;
        m->n_stack = first;
        return WV_OK;
    case '2': /* DUP */
        if (!(a = top(m))) return WV_EFORMAT;
        return push(m, a);
    default:
        return error_set(WV_EFORMAT, "pickle: unsupported opcode 0x%02x ('%c') at offset %zu", op,
                         op >= 32 && op < 127 ? op : '?', m->op_at);
    }
}

enum wv_status pk_load(const uint8_t *data, size_t len, struct pk_machine **out,
                       struct pk_obj **root)
{
    *out = NULL;
    *root = NULL;
    struct pk_machine *m = calloc(1, sizeof *m);
    if (!m) return error_set(WV_ENOMEM, "pickle: out of memory");
    m->data = data;
    m->len = len;
    m->mem_limit = PK_MEM_BASE + (len < SIZE_MAX / PK_MEM_PER_BYTE ? len * PK_MEM_PER_BYTE : len);
    m->memo_limit = len + 16; /* a memo id never exceeds the number of PUTs before it */
    /* allocated up front so that stack + index is never arithmetic on NULL */
    m->cap_stack = 64;
    m->stack = malloc(m->cap_stack * sizeof *m->stack);
    if (!m->stack) {
        free(m);
        return error_set(WV_ENOMEM, "pickle: out of memory");
    }
    int stop = 0;
    enum wv_status st = WV_OK;
    while (!st && !stop) {
        if (m->pos >= m->len) {
            st = error_set(WV_EFORMAT, "pickle: truncated (no STOP opcode after %zu bytes)", len);
            break;
        }
        st = step(m, &stop);
        if (st && !error_msg()[0]) /* a path that returned without a message */
            error_set(st, "pickle: malformed data at offset %zu", m->op_at);
    }
    if (!st && (m->n_stack != 1 || m->n_marks))
        st = error_set(WV_EFORMAT, "pickle: STOP with %zu objects and %zu marks on the stack",
                       m->n_stack, m->n_marks);
    if (st) {
        pk_free(m);
        return st;
    }
    *root = m->stack[0];
    *out = m;
    return WV_OK;
}
