/*
 * pth.c — the PyTorch checkpoint reader (weights.h): torch.save's zip layout (torch >= 1.6),
 *   <prefix>/data.pkl      the pickled object (restricted unpickler, pickle.c)
 *   <prefix>/data/<key>    one raw little-endian storage per persistent id
 *   <prefix>/version, <prefix>/byteorder (optional; "big" is refused)
 * The state dict is ckpt["model"], else ckpt["state_dict"], else the top-level dict when it maps
 * names to tensors. Strided and offset views of shared storages are resolved here; every index
 * is bounds-checked against the storage size. Layout notes: docs/weights.md.
 */
#include "weights.h"

#include <stdlib.h>
#include <string.h>

#include <zip.h>

#include "sha256.h"
#include "weights_private.h"

/* Limit on bytes decompressed from the zip: torch stores entries uncompressed, and deflate
 * cannot exceed ~1032:1, so 1100 x the file size (+1 MiB) bounds a zip bomb without refusing
 * any real file. */
#define PTH_INFLATE_RATIO 1100

struct storage {
    const char *key;
    enum weights_dtype dtype;
    int64_t numel;
    uint8_t *raw; /* numel * dtype size bytes */
};

struct pth {
    zip_t *za;
    char prefix[256];
    uint64_t budget; /* bytes still allowed to be read from entries */
    struct storage *st;
    int n_st, cap_st;
};

/* Read entry `idx` whole; its size must be `want` bytes when want >= 0. */
static enum wv_status read_entry(struct pth *p, zip_int64_t idx, const char *name, int64_t want,
                                 uint8_t **out, size_t *out_len)
{
    *out = NULL;
    zip_stat_t zs;
    zip_stat_init(&zs);
    if (zip_stat_index(p->za, (zip_uint64_t)idx, 0, &zs) || !(zs.valid & ZIP_STAT_SIZE))
        return error_set(WV_EFORMAT, "pth: cannot stat zip entry %s: %s", name,
                         zip_strerror(p->za));
    if (want >= 0 && zs.size != (uint64_t)want)
        return error_set(WV_EFORMAT, "pth: zip entry %s is %llu bytes, expected %lld", name,
                         (unsigned long long)zs.size, (long long)want);
    if (zs.size > p->budget)
        return error_set(WV_EFORMAT, "pth: zip entry %s claims %llu bytes, more than the file "
                                     "can hold", name, (unsigned long long)zs.size);
    p->budget -= zs.size;
    size_t n = (size_t)zs.size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return error_set(WV_ENOMEM, "pth: out of memory for zip entry %s", name);
    zip_file_t *zf = zip_fopen_index(p->za, (zip_uint64_t)idx, 0);
    if (!zf) {
        free(buf);
        return error_set(WV_EFORMAT, "pth: cannot open zip entry %s: %s", name,
                         zip_strerror(p->za));
    }
    size_t got = 0;
    while (got < n) {
        zip_int64_t r = zip_fread(zf, buf + got, n - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    int bad = got != n;
    char why[128] = "";
    if (bad) snprintf(why, sizeof why, "%s", zip_file_strerror(zf));
    zip_fclose(zf);
    if (bad) {
        free(buf);
        return error_set(WV_EFORMAT, "pth: zip entry %s: read %zu of %zu bytes (%s); truncated?",
                         name, got, n, why);
    }
    *out = buf;
    if (out_len) *out_len = n;
    return WV_OK;
}

/* The storage for a persistent id, read once and shared by every view of it. */
static enum wv_status get_storage(struct pth *p, const struct pk_obj *so, const char *tensor,
                                  struct storage **out)
{
    for (int i = 0; i < p->n_st; i++)
        if (!strcmp(p->st[i].key, so->u.storage.key)) {
            if (p->st[i].dtype != so->u.storage.dtype || p->st[i].numel != so->u.storage.numel)
                return error_set(WV_EFORMAT, "tensor %s: storage %s is declared twice with "
                                             "different types or sizes", tensor, p->st[i].key);
            *out = &p->st[i];
            return WV_OK;
        }
    if (p->n_st == p->cap_st) {
        int cap = p->cap_st ? p->cap_st * 2 : 64;
        struct storage *s = realloc(p->st, (size_t)cap * sizeof *s);
        if (!s) return error_set(WV_ENOMEM, "pth: out of memory");
        p->st = s;
        p->cap_st = cap;
    }
    char name[512];
    snprintf(name, sizeof name, "%s%sdata/%s", p->prefix, p->prefix[0] ? "/" : "",
             so->u.storage.key);
    zip_int64_t idx = zip_name_locate(p->za, name, 0);
    if (idx < 0)
        return error_set(WV_EFORMAT, "tensor %s: storage entry %s missing from the zip", tensor,
                         name);
    struct storage *s = &p->st[p->n_st];
    s->key = so->u.storage.key;
    s->dtype = so->u.storage.dtype;
    s->numel = so->u.storage.numel;
    enum wv_status st =
        read_entry(p, idx, name, s->numel * (int64_t)wdt_size(s->dtype), &s->raw, NULL);
    if (st) {
        error_prefix("tensor %s", tensor);
        return st;
    }
    p->n_st++;
    *out = s;
    return WV_OK;
}

static enum wv_status add_tensor(struct pth *p, struct weights *w, const char *name,
                                 const struct pk_obj *v)
{
    if (v->kind != PK_TENSOR)
        return error_set(WV_EFORMAT, "tensor %s: the state dict value is not a tensor", name);
    const struct pk_tensor *t = v->u.tensor;
    struct storage *s = NULL;
    enum wv_status st = get_storage(p, t->storage, name, &s);
    if (st) return st;
    int64_t numel;
    if ((st = shape_numel(name, t->ndim, t->shape, &numel))) return st;
    /* highest element index the view touches, overflow-checked */
    int64_t last = t->offset;
    if (numel > 0)
        for (int i = 0; i < t->ndim; i++) {
            int64_t span = t->shape[i] - 1;
            if (t->stride[i] && span > (INT64_MAX - last) / t->stride[i])
                return error_set(WV_EFORMAT, "tensor %s: strides overflow", name);
            last += span * t->stride[i];
        }
    if (numel > 0 && last >= s->numel)
        return error_set(WV_EFORMAT, "tensor %s: view (offset %lld, last element %lld) outside "
                                     "its storage of %lld elements", name, (long long)t->offset,
                         (long long)last, (long long)s->numel);
    float *dst;
    if ((st = weights_add(w, name, t->ndim, t->shape, s->dtype, &dst))) return st;
    size_t es = wdt_size(s->dtype);
    int contiguous = 1;
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != expect) contiguous = 0;
        expect *= t->shape[i];
    }
    if (numel == 0) return WV_OK;
    if (contiguous) {
        weights_convert(s->dtype, s->raw + (size_t)t->offset * es, numel, dst);
        return WV_OK;
    }
    /* strided view: walk the multi-index in C order */
    int64_t idx[WEIGHTS_MAX_DIMS] = {0};
    int64_t off = t->offset;
    for (int64_t k = 0; k < numel; k++) {
        weights_convert(s->dtype, s->raw + (size_t)off * es, 1, &dst[k]);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) {
                off += t->stride[d];
                break;
            }
            off -= (t->shape[d] - 1) * t->stride[d];
            idx[d] = 0;
        }
    }
    return WV_OK;
}

/* ckpt["model"], else ckpt["state_dict"], else the dict itself when its values are tensors. */
static enum wv_status pick_state_dict(const struct pk_obj *root, const struct pk_obj **sd)
{
    if (root->kind != PK_DICT)
        return error_set(WV_EFORMAT, "pth: the pickled object is not a dict");
    static const char *const keys[] = {"model", "state_dict"};
    for (int i = 0; i < 2; i++) {
        const struct pk_obj *v = pk_dict_get(root, keys[i]);
        if (!v) continue;
        if (v->kind != PK_DICT)
            return error_set(WV_EFORMAT, "pth: checkpoint entry '%s' is not a dict", keys[i]);
        *sd = v;
        return WV_OK;
    }
    size_t n_tensors = 0;
    for (size_t i = 0; i < root->u.dict.n; i++)
        n_tensors += root->u.dict.kv[2 * i + 1]->kind == PK_TENSOR;
    if (n_tensors && n_tensors == root->u.dict.n) {
        *sd = root;
        return WV_OK;
    }
    char keys_seen[200] = "";
    size_t k = 0;
    for (size_t i = 0; i < root->u.dict.n && k + 40 < sizeof keys_seen; i++) {
        const struct pk_obj *key = root->u.dict.kv[2 * i];
        if (key->kind != PK_STR) continue;
        k += (size_t)snprintf(keys_seen + k, sizeof keys_seen - k, "%s'%.32s'", k ? ", " : "",
                              key->u.str.s);
    }
    return error_set(WV_EFORMAT, "pth: no 'model' or 'state_dict' entry, and the top-level dict "
                                 "does not map names to tensors (keys: %s)",
                     k ? keys_seen : "none");
}

enum wv_status weights_parse_pth(const uint8_t *data, size_t len, struct weights **out)
{
    *out = NULL;
    struct pth p = {0};
    struct pk_machine *pm = NULL;
    struct weights *w = NULL;
    uint8_t *pkl = NULL;
    size_t pkl_len = 0;
    enum wv_status st = WV_OK;
    p.budget = (uint64_t)len * PTH_INFLATE_RATIO + ((uint64_t)1 << 20);

    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(data, len, 0, &ze);
    if (src) {
        p.za = zip_open_from_source(src, ZIP_RDONLY, &ze);
        if (!p.za) zip_source_free(src);
    }
    if (!p.za) {
        st = error_set(WV_EFORMAT, "pth: not a readable zip file (%s); truncated?",
                       zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return st;
    }
    zip_error_fini(&ze);

    /* find <prefix>/data.pkl (the prefix is the archive's top folder, any name) */
    zip_int64_t n_entries = zip_get_num_entries(p.za, 0), pkl_idx = -1;
    for (zip_int64_t i = 0; i < n_entries && pkl_idx < 0; i++) {
        const char *nm = zip_get_name(p.za, (zip_uint64_t)i, 0);
        if (!nm) continue;
        size_t l = strlen(nm);
        const char *slash = strchr(nm, '/');
        if (l >= 9 && !strcmp(nm + l - 9, "/data.pkl") && slash == nm + l - 9 &&
            l - 9 < sizeof p.prefix) {
            memcpy(p.prefix, nm, l - 9);
            p.prefix[l - 9] = 0;
            pkl_idx = i;
        } else if (!strcmp(nm, "data.pkl")) {
            p.prefix[0] = 0;
            pkl_idx = i;
        }
    }
    if (pkl_idx < 0) {
        st = error_set(WV_EFORMAT, "pth: the zip has no <name>/data.pkl entry (not a torch.save "
                                   "checkpoint)");
        goto done;
    }
    char name[512];
    snprintf(name, sizeof name, "%s%sbyteorder", p.prefix, p.prefix[0] ? "/" : "");
    zip_int64_t bo = zip_name_locate(p.za, name, 0);
    if (bo >= 0) {
        uint8_t *b;
        size_t bl;
        if ((st = read_entry(&p, bo, name, -1, &b, &bl))) goto done;
        int big = bl >= 3 && !memcmp(b, "big", 3);
        free(b);
        if (big) {
            st = error_set(WV_EUNSUPPORTED, "pth: big-endian checkpoint (%s says big)", name);
            goto done;
        }
    }
    snprintf(name, sizeof name, "%s%sdata.pkl", p.prefix, p.prefix[0] ? "/" : "");
    if ((st = read_entry(&p, pkl_idx, name, -1, &pkl, &pkl_len))) goto done;
    struct pk_obj *root;
    if ((st = pk_load(pkl, pkl_len, &pm, &root))) {
        error_prefix("%s", name);
        goto done;
    }
    const struct pk_obj *sd = NULL;
    if ((st = pick_state_dict(root, &sd))) goto done;
    if (!(w = weights_new("pth"))) {
        st = error_code();
        goto done;
    }
    for (size_t i = 0; i < sd->u.dict.n; i++) {
        const struct pk_obj *k = sd->u.dict.kv[2 * i];
        if (k->kind != PK_STR || k->u.str.len == 0 || strlen(k->u.str.s) != k->u.str.len) {
            st = error_set(WV_EFORMAT, "pth: state dict key #%zu is not a non-empty string", i);
            goto done;
        }
        if ((st = add_tensor(&p, w, k->u.str.s, sd->u.dict.kv[2 * i + 1]))) goto done;
    }
    st = weights_finish(w);
done:
    for (int i = 0; i < p.n_st; i++) free(p.st[i].raw);
    free(p.st);
    pk_free(pm);
    free(pkl);
    zip_discard(p.za);
    if (st) {
        weights_free(w);
        return st;
    }
    sha256_buffer_hex(data, len, w->sha256);
    *out = w;
    return WV_OK;
}
