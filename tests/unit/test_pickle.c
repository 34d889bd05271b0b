/*
 * test_pickle.c — the restricted unpickler (src/pickle.c, behind weights_private.h): the opcodes
 * torch.save emits decode to the right objects; globals outside the allowlist are refused by
 * name (GLOBAL and STACK_GLOBAL); malformed and truncated streams fail with a message, never a
 * crash, at every cut point.
 */
#include <string.h>

#include "src/error.h"
#include "src/weights_private.h"
#include "testutil.h"

#define P(s) (const uint8_t *)(s), sizeof(s) - 1

static int load_ok(const uint8_t *d, size_t n, struct pk_machine **m, struct pk_obj **root)
{
    error_clear();
    enum wv_status st = pk_load(d, n, m, root);
    if (st) fprintf(stderr, "  pk_load: %s\n", error_msg());
    return st == WV_OK;
}

static void expect_fail(const char *label, const uint8_t *d, size_t n, const char *want)
{
    struct pk_machine *m = NULL;
    struct pk_obj *root = NULL;
    error_clear();
    enum wv_status st = pk_load(d, n, &m, &root);
    CHECK_MSG(st != WV_OK && !m && !root, "%s: loaded", label);
    CHECK_MSG(strstr(error_msg(), want) != NULL, "%s: message '%s' lacks '%s'", label,
              error_msg(), want);
    pk_free(m);
    error_clear();
}

/* {'model': {'w': _rebuild_tensor_v2(pid('storage', FloatStorage, '0', 'cpu', 6), 2, (2, 2),
 *  (1, 2), False, OrderedDict())}, 'epoch': -3, 'lr': 0.5, 'big': 2**40, 'l': [1, 2]} */
static const char TORCH_LIKE[] =
    "\x80\x02}q\x00(X\x05\x00\x00\x00modelq\x01}q\x02X\x01\x00\x00\x00wq\x03"
    "ctorch._utils\n_rebuild_tensor_v2\nq\x04((X\x07\x00\x00\x00storageq\x05"
    "ctorch\nFloatStorage\nq\x06X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x06tq\x07QK\x02"
    "K\x02K\x02\x86K\x01K\x02\x86\x89" "ccollections\nOrderedDict\n)Rtq\x08Rq\x09" "s"
    "X\x05\x00\x00\x00" "epochJ\xfd\xff\xff\xff"
    "X\x02\x00\x00\x00lrG?\xe0\x00\x00\x00\x00\x00\x00"
    "X\x03\x00\x00\x00" "big\x8a\x06\x00\x00\x00\x00\x00\x01"
    "X\x01\x00\x00\x00" "l]q\x0a(K\x01K\x02" "e"
    "u.";

static void test_torch_like(void)
{
    struct pk_machine *m;
    struct pk_obj *root;
    CHECK(load_ok(P(TORCH_LIKE), &m, &root));
    if (!root) return;
    CHECK(root->kind == PK_DICT && root->u.dict.n == 5);
    struct pk_obj *model = pk_dict_get(root, "model");
    CHECK(model && model->kind == PK_DICT && model->u.dict.n == 1);
    struct pk_obj *t = pk_dict_get(model, "w");
    CHECK(t && t->kind == PK_TENSOR);
    if (t && t->kind == PK_TENSOR) {
        const struct pk_tensor *x = t->u.tensor;
        CHECK(x->ndim == 2 && x->shape[0] == 2 && x->shape[1] == 2 && x->stride[0] == 1 &&
              x->stride[1] == 2 && x->offset == 2);
        CHECK(x->storage->kind == PK_STORAGE && !strcmp(x->storage->u.storage.key, "0") &&
              x->storage->u.storage.numel == 6 && x->storage->u.storage.dtype == WDT_F32);
    }
    struct pk_obj *o = pk_dict_get(root, "epoch");
    CHECK(o && o->kind == PK_INT && o->u.i == -3);
    o = pk_dict_get(root, "lr");
    CHECK(o && o->kind == PK_FLOAT && o->u.f == 0.5);
    o = pk_dict_get(root, "big");
    CHECK(o && o->kind == PK_INT && o->u.i == ((int64_t)1 << 40));
    o = pk_dict_get(root, "l");
    CHECK(o && o->kind == PK_LIST && o->u.seq.n == 2 && o->u.seq.items[1]->u.i == 2);
    CHECK(pk_dict_get(root, "nope") == NULL);
    pk_free(m);

    /* every cut of the stream fails cleanly */
    int all = 1;
    for (size_t cut = 0; cut + 1 < sizeof TORCH_LIKE - 1; cut++) {
        struct pk_machine *mm = NULL;
        struct pk_obj *r = NULL;
        error_clear();
        if (pk_load((const uint8_t *)TORCH_LIKE, cut, &mm, &r) == WV_OK || !error_msg()[0]) {
            all = 0;
            fprintf(stderr, "  cut at %zu loaded\n", cut);
        }
        pk_free(mm);
    }
    CHECK(all);
    error_clear();
}

static void test_refused_globals(void)
{
    expect_fail("os.system", P("\x80\x02\x63os\nsystem\nX\x02\x00\x00\x00id\x85R."),
                "refusing global os.system");
    expect_fail("posix.system", P("\x80\x02\x63posix\nsystem\nX\x02\x00\x00\x00id\x85R."),
                "refusing global posix.system");
    expect_fail("builtins.eval", P("\x80\x02\x63\x62uiltins\neval\n."),
                "refusing global builtins.eval");
    expect_fail("subprocess", P("\x80\x02\x63subprocess\nPopen\n."),
                "refusing global subprocess.Popen");
    expect_fail("STACK_GLOBAL eval",
                P("\x80\x04\x8c\x08\x62uiltins\x8c\x04\x65val\x93\x8c\x03\x31+1\x85R."),
                "refusing global builtins.eval");
    expect_fail("STACK_GLOBAL os.system",
                P("\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93."), "refusing global os.system");
    /* a torch name that is not on the list */
    expect_fail("torch.load", P("\x80\x02\x63torch\nload\n."), "refusing global torch.load");
    /* even allowlisted, a storage class is not callable */
    expect_fail("call storage", P("\x80\x02\x63torch\nFloatStorage\n)R."),
                "called directly");
    /* REDUCE on something that is not a global */
    expect_fail("reduce str", P("\x80\x02X\x01\x00\x00\x00" "a)R."), "not an allowed global");
    /* old text-mode object opcodes are not implemented at all */
    expect_fail("INST", P("\x80\x02(ios\nsystem\n."), "unsupported opcode 0x69");
    expect_fail("OBJ", P("\x80\x02(o."), "unsupported opcode 0x6f");
    expect_fail("REDUCE tensor wrong",
                P("\x80\x02\x63torch._utils\n_rebuild_tensor_v2\n(K\x01K\x02K\x03K\x04tR."),
                "argument 0 is a int");
}

static void test_malformed(void)
{
    expect_fail("empty", (const uint8_t *)"", 0, "truncated");
    expect_fail("no stop", P("\x80\x02}"), "truncated");
    expect_fail("proto", P("\x80\x09}."), "protocol 9");
    expect_fail("underflow", P("\x80\x02s."), "stack underflow");
    expect_fail("tuple no mark", P("\x80\x02K\x01t."), "no MARK");
    expect_fail("pop under mark", P("\x80\x02K\x01(0."), "stack underflow");
    expect_fail("append dict", P("\x80\x02}K\x01\x61."), "APPEND to a dict");
    expect_fail("setitems odd", P("\x80\x02}(K\x01u."), "odd number");
    expect_fail("setitem list", P("\x80\x02]K\x01K\x02s."), "SETITEM on a list");
    expect_fail("binget", P("\x80\x02h\x05."), "memo entry 5 undefined");
    expect_fail("memo big", P("\x80\x02}r\x00\x00\x00\x10."), "memo index");
    expect_fail("long4", P("\x80\x02\x8b\x10\x00\x00\x00" "0123456789abcdef."), "integer of 16");
    expect_fail("string len", P("\x80\x02X\xff\xff\xff\xff" "abc."), "truncated");
    expect_fail("two objects", P("\x80\x02K\x01K\x02."), "STOP with 2 objects");
    expect_fail("bad persid", P("\x80\x02K\x01Q."), "persistent id");
    expect_fail("text int", P("\x80\x02I1\n."), "unsupported opcode 0x49");
    /* deep MARK nesting and long stacks: iterative, bounded, no crash */
    static uint8_t deep[200003];
    deep[0] = 0x80;
    deep[1] = 2;
    memset(deep + 2, '(', 200000);
    deep[200002] = '.';
    expect_fail("deep marks", deep, sizeof deep, "marks on the stack");
    /* memory limit: a list appended to itself through the memo grows only linearly */
    static uint8_t selfref[60006];
    size_t k = 0;
    selfref[k++] = 0x80;
    selfref[k++] = 2;
    selfref[k++] = ']';
    selfref[k++] = 'q';
    selfref[k++] = 0;
    while (k + 4 < sizeof selfref) {
        selfref[k++] = 'h';
        selfref[k++] = 0;
        selfref[k++] = 'a';
    }
    selfref[k++] = '.';
    struct pk_machine *m;
    struct pk_obj *root;
    CHECK(load_ok(selfref, k, &m, &root));
    if (root) CHECK(root->kind == PK_LIST && root->u.seq.n == (k - 6) / 3);
    pk_free(m);
}

int main(void)
{
    test_torch_like();
    test_refused_globals();
    test_malformed();
    return tu_finish("test_pickle");
}
