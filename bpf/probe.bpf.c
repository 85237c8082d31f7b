// SPDX-License-Identifier: MIT OR GPL-2.0-only
/* logprobe's kernel side: one generic executor of capture recipes.
 *
 * Every uprobe (uprobe-multi links, one per batch of probes) runs
 * `lp_probe`; its attach cookie is the probe's slot, which selects its
 * recipe in `recipes` and names it in the event (user space maps slots
 * back to probe ids). The program checks the probe's
 * guard (Go's stack-check jump about to be taken: skip this pass), copies
 * the registers, runs the capture steps in order (registers, stack slots,
 * memory behind earlier captures, each bounded; a recipe's filter, a DAP
 * condition compiled by logprobe, may reject the hit once the captures it
 * reads are taken; then the recipe's rate limits, token buckets in
 * `buckets` and `total_bucket`, may leave it out; returns are reported
 * only for calls that were), and emits one record to
 * the `events` ring buffer without waking the reader (it polls on a
 * timer). Hits, lost records and those left out are counted in
 * `counters`, so the reader can prove that seen + dropped + filtered +
 * limited = hits.
 *
 * Two raw tracepoints (system call entry and exit) mark the launched
 * program's writes to its stdout/stderr (relayed through pipes by
 * logprobe) in the same ring buffer, so its output and the trace lines
 * are printed in the order they happened.
 *
 * XMM registers (Go's and C's float arguments and results) are not in a
 * uprobe's pt_regs, and the kernel's copy of the user's vector registers
 * is not current while the thread runs. So a hit that captures XMM
 * registers, on a thread with a real SIGURG handler that does not block
 * it (every Go program: SIGURG is its preemption request, and a spurious
 * one is harmless), is parked in `pending` with its XMM bytes still to
 * fill, and the probe sends the thread SIGURG. On the way back to user
 * space the kernel saves the live vector registers into the signal frame
 * it builds on the user's stack; `lp_sigtramp`, a uprobe on the program's
 * signal handler, reads the XMM registers from that frame (no user code
 * ran since the probe), fills them in and emits the record, before the
 * thread runs any more code of its own, so the thread's order is kept.
 * Without a usable handler, XMM captures are unreadable. (The kernel here
 * has no kprobes and refuses fentry programs, so the frame is read from
 * user space's side.)
 *
 * The kernel single-steps most probed instructions before that frame is
 * built, so an XMM register the probed instruction overwrites is lost
 * (user space knows which, and undoes a float32 widened in place). A
 * probe whose instruction would lose one (a frameless function whose
 * first instruction does arithmetic on its float argument) is armed by
 * a hardware execute breakpoint instead, a perf event per thread that
 * runs `lp_breakpoint` before the instruction, so the frame holds the
 * registers as they were. When Go preempts a goroutine in that signal
 * (its handler makes it call asyncPreempt, which later returns to the
 * same instruction), `lp_preempt` remembers where it resumes, and the
 * breakpoint's second firing there is not taken for a new call. */
#include <linux/bpf.h>
#include <linux/bpf_perf_event.h>
#include <bpf/bpf_helpers.h>
#include "probe.h"

#define LP_SIGURG 23
/* The pt_regs slot of RIP. */
#define LP_REG_RIP 16

/* GPL-compatible, as bpf_probe_read_user requires; MIT like the rest. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* resized to the number of slots before load */
	__type(key, __u32);
	__type(value, struct lp_recipe);
} recipes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LP_NCOUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lp_relay);
} relay SEC(".maps");

/* Threads inside a relayed write, and its fd. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} writing SEC(".maps");

/* Frames of calls a filter admitted, whose returns are reported. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LP_MAX_FRAMES);
	__type(key, struct lp_frame);
	__type(value, __u8);
} frames SEC(".maps");

/* The rate limits' token buckets: one per recipe slot (resized like
 * `recipes`; user space zeroes a slot's when it stores a recipe there),
 * with the hits its probe had over a limit; and the total's. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lp_bucket);
} buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lp_bucket);
} total_bucket SEC(".maps");

/* Set by user space once `lp_sigtramp` is attached: XMM captures may
 * then go through a signal frame (see struct lp_sigxmm). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lp_sigxmm);
} sigxmm SEC(".maps");

/* A hit waiting for its thread's signal frame: the whole record, and
 * where in it each XMM capture's 8 bytes go. */
struct lp_pending {
	__u32 tid;
	__u32 size; /* of rec; 0: nothing waiting */
	__u32 nxmm;
	__u32 pad;
	__u32 off[LP_MAX_XMM];
	__u8 reg[LP_MAX_XMM];
	__u8 rec[LP_PENDING_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LP_PENDING);
	__type(key, __u32);
	__type(value, struct lp_pending);
} pending SEC(".maps");

/* Which thread owns each `pending` slot: an insert that fails because
 * the slot is taken (BPF_NOEXIST) is the lock. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LP_PENDING);
	__type(key, __u32);
	__type(value, __u32);
} claims SEC(".maps");

/* The probe slot of each instruction armed by a hardware breakpoint (its
 * run-time address): a breakpoint's perf event carries no cookie into the
 * threads that inherit it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LP_MAX_BREAKPOINTS);
	__type(key, __u64);
	__type(value, __u32);
} breakpoints SEC(".maps");

/* Goroutines (their `g`) that Go preempted at a breakpointed instruction,
 * and where they resume. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LP_MAX_PREEMPTED);
	__type(key, __u64);
	__type(value, struct lp_resume);
} preempted SEC(".maps");

/* The record being built (far too large for the BPF stack), plus each
 * capture's length and start, and the copied registers. `data` has room
 * past LP_DATA_SIZE for one more read and the lengths. */
struct lp_scratch {
	struct lp_event ev;
	__u8 data[LP_DATA_SIZE + LP_MAX_CAP_LEN + LP_PAGE + 2 * LP_MAX_CAPS];
	__u16 len[LP_MAX_CAPS];
	__u32 off[LP_MAX_CAPS];
	__u64 regs[LP_NREGS];
	__u32 used;
	__u32 busy;
	/* 0: no XMM capture yet; 1: they wait for the signal frame; 2: they
	 * are unreadable. */
	__u32 xmm_state;
	__u32 xmm_key; /* the claimed `pending` slot */
	__u32 nxmm;
	__u32 xmm_off[LP_MAX_XMM];
	__u8 xmm_reg[LP_MAX_XMM];
	/* The filter being run (see lp_filter_op): captures taken, its value
	 * stack, and whether a value it needed was not captured. */
	__u32 f_taken;
	__u32 f_depth;
	__u32 f_undecided;
	__u64 f_stack[LP_FILTER_STACK];
};

/* One scratch record per CPU, indexed by CPU number (a per-CPU map's
 * values cannot be this large); resized to the CPU count before load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lp_scratch);
} scratch SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &slot);
	if (c)
		*c += 1;
}

/* Same as plan::condition_holds. */
static __always_inline int condition_holds(__u32 cc, __u64 flags)
{
	int cf = (flags & 0x1) != 0, pf = (flags & 0x4) != 0;
	int zf = (flags & 0x40) != 0, sf = (flags & 0x80) != 0;
	int of = (flags & 0x800) != 0;
	int base;
	switch ((cc >> 1) & 7) {
	case 0: base = of; break;
	case 1: base = cf; break;
	case 2: base = zf; break;
	case 3: base = cf || zf; break;
	case 4: base = sf; break;
	case 5: base = pf; break;
	case 6: base = sf != of; break;
	default: base = zf || (sf != of); break;
	}
	return (cc & 1) ? !base : base;
}

/* Global (non-static, not inlined) functions. The verifier checks each of
 * them once, on its own, knowing its arguments only by their types,
 * instead of once for every path through its callers: that is what keeps
 * loading the program in milliseconds. (Inlined, the capture step with its
 * page loop, the filter's byte loop and the parking loop multiplied into
 * the caller's states and took about a second to verify.) Their pointer
 * arguments may be null as far as the verifier knows, so each checks.
 * Recipes are data: the program does not grow with them. */

/* Reads up to `len` bytes of user memory at `addr` into the scratch data
 * at `at`, like process_vm_readv: when the whole range is not readable,
 * the readable pages before the first unreadable one are. Returns the
 * bytes read, or -1. */
struct read_ctx {
	__u8 *dst;
	__u64 len;
	__u64 addr;
	__u64 got;
};

/* One page of a read that failed whole (lp_read_user). */
static long read_page(__u64 index, void *arg)
{
	struct read_ctx *c = arg;
	__u64 got = c->got;
	if (got >= c->len)
		return 1;
	__u64 chunk = LP_PAGE - ((c->addr + got) & (LP_PAGE - 1));
	if (chunk > c->len - got)
		chunk = c->len - got;
	if (chunk > LP_PAGE)
		chunk = LP_PAGE;
	got &= LP_MAX_CAP_LEN - 1;
	if (bpf_probe_read_user(c->dst + got, chunk, (const void *)(c->addr + got)))
		return 1;
	c->got = got + chunk;
	return 0;
}

__noinline long lp_read_user(struct lp_scratch *s, __u32 at, __u64 len, __u64 addr)
{
	if (!s)
		return -1;
	if (len > LP_MAX_CAP_LEN)
		len = LP_MAX_CAP_LEN;
	if (len == 0)
		return 0;
	__u8 *dst = &s->data[at & (LP_DATA_SIZE - 1)];
	if (bpf_probe_read_user(dst, len, (const void *)addr) == 0)
		return len;
	struct read_ctx c = { .dst = dst, .len = len, .addr = addr, .got = 0 };
	bpf_loop(LP_MAX_CAP_LEN / LP_PAGE + 1, read_page, &c, 0);
	return c.got > 0 ? (long)c.got : -1;
}

/* The frame pointer walk of a FRAMES capture (lp_frames). */
struct frames_ctx {
	__u8 *dst;
	__u32 n;
	__u32 count;
	__u64 fp;
	__u64 floor;
};

/* One frame: the return address at fp + 8, then on to the caller's frame
 * pointer at fp, which must lie closer to the stack's base. */
static long walk_frame(__u64 index, void *arg)
{
	struct frames_ctx *c = arg;
	/* The frame number comes from the loop's index, not from the context,
	 * so that the verifier checks one pass, not one per frame. */
	__u64 k = index + 1;
	__u64 pair[2] = {};
	if (k >= c->count || c->fp <= c->floor || (c->fp & 7))
		return 1;
	if (bpf_probe_read_user(pair, sizeof(pair), (const void *)c->fp) || pair[1] == 0)
		return 1;
	__u32 at = (8 * k) & (LP_MAX_CAP_LEN - 1);
	__builtin_memcpy(c->dst + at, &pair[1], 8);
	c->n = k + 1;
	c->floor = c->fp;
	c->fp = pair[0];
	return 0;
}

/* The return addresses of the innermost `count` frames into the scratch
 * data at `at` (adapter/src/backend/exec.rs `frames`, the same walk):
 * the one the call pushed below the canonical frame address `cfa`, then
 * the frame pointer chain's from RBP, which is first followed once when
 * it points into the probed function's own frame. Returns the bytes
 * written. Taken here, at the hit: the program is never stopped. */
__noinline long lp_frames(struct lp_scratch *s, __u32 at, __u64 cfa, __u32 count)
{
	if (!s)
		return -1;
	if (count == 0)
		return 0;
	if (count > LP_MAX_STACK)
		count = LP_MAX_STACK;
	__u64 sp = s->regs[LP_REG_RSP];
	__u64 ret = 0;
	if (bpf_probe_read_user(&ret, sizeof(ret), (const void *)(cfa - 8)))
		return 0;
	__u8 *dst = &s->data[at & (LP_DATA_SIZE - 1)];
	__builtin_memcpy(dst, &ret, 8);
	__u64 fp = s->regs[LP_REG_RBP];
	if (fp >= sp && fp < cfa && bpf_probe_read_user(&fp, sizeof(fp), (const void *)fp))
		return 8;
	struct frames_ctx c = { .dst = dst, .n = 1, .count = count, .fp = fp, .floor = cfa - 8 };
	bpf_loop(LP_MAX_STACK, walk_frame, &c, 0);
	return 8 * (long)c.n;
}

/* The little-endian u64 at byte `at` of capture `c` (which must come
 * before capture `i`); 0 in *ok when there is none. */
static __always_inline __u64 u64_of(struct lp_scratch *s, __u32 i, __u32 c, __u32 at, int *ok)
{
	*ok = 0;
	if (c >= i || c >= LP_MAX_CAPS)
		return 0;
	__u32 n = s->len[c];
	if (n == LP_UNREADABLE || at + 8 > n)
		return 0;
	__u32 pos = (s->off[c] + at) & (LP_DATA_SIZE - 1);
	__u64 v = 0;
	__builtin_memcpy(&v, &s->data[pos], 8);
	*ok = 1;
	return v;
}

/* Whether the current thread has a SIGURG handler of its own and does not
 * block SIGURG, read at the offsets user space found in the kernel's BTF. */
static __always_inline int handles_sigurg(struct lp_sigxmm *x)
{
	void *t = (void *)bpf_get_current_task();
	void *sh = 0;
	unsigned long h = 0, blocked = 0;
	if (bpf_probe_read_kernel(&sh, sizeof(sh), t + x->sighand) || !sh)
		return 0;
	if (bpf_probe_read_kernel(&h, sizeof(h), sh + x->sigurg_handler))
		return 0;
	/* SIG_DFL and SIG_IGN */
	if (h <= 1)
		return 0;
	if (bpf_probe_read_kernel(&blocked, sizeof(blocked), t + x->blocked))
		return 0;
	return !(blocked & (1ul << (LP_SIGURG - 1)));
}

/* Decides, at a hit's first XMM capture, whether its XMM captures can be
 * read through a signal frame: claims the thread's `pending` slot and
 * sends the signal. */
static __always_inline int xmm_ready(struct lp_scratch *s)
{
	if (s->xmm_state)
		return s->xmm_state == 1;
	s->xmm_state = 2;
	__u32 zero = 0;
	struct lp_sigxmm *x = bpf_map_lookup_elem(&sigxmm, &zero);
	if (!x || !x->on || !handles_sigurg(x))
		return 0;
	__u32 tid = s->ev.tid;
	__u32 key = 2 * (tid % LP_PENDING_THREADS);
	if (bpf_map_update_elem(&claims, &key, &tid, BPF_NOEXIST)) {
		key += 1;
		if (bpf_map_update_elem(&claims, &key, &tid, BPF_NOEXIST))
			return 0;
	}
	s->xmm_key = key;
	if (bpf_send_signal_thread(LP_SIGURG)) {
		bpf_map_delete_elem(&claims, &key);
		return 0;
	}
	s->xmm_state = 1;
	return 1;
}

/* Runs capture step `i` of recipe `r` into the scratch record. Returns 0
 * to go on, 1 to stop (no room left). */
__noinline int lp_capture(struct lp_scratch *s, struct lp_recipe *r, __u32 i)
{
	if (!s || !r || i >= LP_MAX_CAPS)
		return 1;
	struct lp_capture *cap = &r->caps[i];
	__u32 used = s->used;
	if (used >= LP_DATA_SIZE)
		return 1;
	__u8 *dst = &s->data[used & (LP_DATA_SIZE - 1)];
	long n = -1;
	int ok = 0;

	switch (cap->kind) {
	case LP_CAP_REG: {
		__u32 reg = cap->reg;
		if (reg < LP_NREGS) {
			__u64 v = s->regs[reg];
			__builtin_memcpy(dst, &v, 8);
			n = 8;
		}
		break;
	}
	case LP_CAP_XMM:
		/* Eight bytes kept for `lp_sigtramp` to fill. */
		if (s->nxmm < LP_MAX_XMM && xmm_ready(s)) {
			__u32 k = s->nxmm & (LP_MAX_XMM - 1);
			s->xmm_off[k] = used;
			s->xmm_reg[k] = cap->reg & 15;
			s->nxmm = k + 1;
			__u64 zero = 0;
			__builtin_memcpy(dst, &zero, 8);
			n = 8;
		}
		break;
	case LP_CAP_STACK:
		n = lp_read_user(s, used, cap->len, s->regs[LP_REG_RSP] + (__s64)cap->add);
		break;
	case LP_CAP_DEREF: {
		__u64 ptr = u64_of(s, i, cap->base, cap->offset, &ok);
		if (!ok || ptr == 0)
			break;
		__u64 want;
		if (cap->len_kind == LP_LEN_FIXED) {
			want = cap->len;
		} else if (cap->len_kind == LP_LEN_SHIFTED) {
			__u32 c = cap->count_capture, at = cap->count_offset;
			if (c >= i || c >= LP_MAX_CAPS || s->len[c] == LP_UNREADABLE ||
			    at >= s->len[c])
				break;
			__u32 n = s->data[(s->off[c] + at) & (LP_DATA_SIZE - 1)];
			if (n > 31)
				n = 31;
			want = ((__u64)1 << n) * cap->len;
			if (want > cap->max)
				want = cap->max;
		} else {
			__u64 c = u64_of(s, i, cap->count_capture, cap->count_offset, &ok);
			if (!ok || (__s64)c < 0)
				break;
			__u64 max = cap->max;
			if (c > max)
				c = max;
			want = c * cap->len;
			if (want > max)
				want = max;
		}
		if (want > LP_MAX_CAP_LEN)
			want = LP_MAX_CAP_LEN;
		n = lp_read_user(s, used, want, ptr + (__s64)cap->add);
		break;
	}
	case LP_CAP_FRAMES: {
		__u32 reg = cap->reg;
		if (reg < LP_NREGS)
			n = lp_frames(s, used, s->regs[reg] + (__s64)cap->add, cap->len);
		break;
	}
	default:
		break;
	}
	if (n < 0) {
		s->len[i] = LP_UNREADABLE;
		s->off[i] = used;
	} else {
		if (n > LP_MAX_CAP_LEN)
			n = LP_MAX_CAP_LEN;
		s->len[i] = n;
		s->off[i] = used;
		s->used = used + n;
	}
	return 0;
}

struct loop_ctx {
	struct lp_scratch *s;
	struct lp_recipe *r;
	__u32 start; /* the capture at the loop's index 0 */
};

static long run_capture(__u64 index, void *arg)
{
	struct loop_ctx *lc = arg;
	return lp_capture(lc->s, lc->r, lc->start + index) ? 1 : 0;
}

/* Where `size` bytes at byte `at` of capture `c` start in the scratch
 * data, or -1 when they were not captured. */
static __always_inline long captured_at(struct lp_scratch *s, __u32 c, __u32 at, __u32 size)
{
	if (c >= s->f_taken || c >= LP_MAX_CAPS)
		return -1;
	__u32 n = s->len[c];
	if (n == LP_UNREADABLE || at + size > n)
		return -1;
	return (s->off[c] + at) & (LP_DATA_SIZE - 1);
}

static __always_inline int cmp_holds(__u32 op, __u64 a, __u64 b, int sgn)
{
	int lt = sgn ? (__s64)a < (__s64)b : a < b;
	int eq = a == b;
	switch (op) {
	case LP_CMP_EQ: return eq;
	case LP_CMP_NE: return !eq;
	case LP_CMP_LT: return lt;
	case LP_CMP_LE: return lt || eq;
	case LP_CMP_GT: return !lt && !eq;
	default: return !lt;
	}
}

/* Whether capture `c` begins with the `n` filter bytes at `at`. */
struct prefix_ctx {
	struct lp_scratch *s;
	struct lp_filter *f;
	__u32 from; /* in the scratch data */
	__u32 at;   /* in the filter's bytes */
	__u32 equal;
};

static long prefix_byte(__u64 k, void *arg)
{
	struct prefix_ctx *c = arg;
	if (c->s->data[(c->from + k) & (LP_DATA_SIZE - 1)] !=
	    c->f->bytes[(c->at + k) & (LP_MAX_FILTER_BYTES - 1)]) {
		c->equal = 0;
		return 1;
	}
	return 0;
}

static __always_inline __u64 has_prefix(struct lp_scratch *s, struct lp_filter *f, __u32 c,
					__u32 at, __u32 n)
{
	if (n > s->len[c & (LP_MAX_CAPS - 1)] || n > LP_MAX_FILTER_BYTES)
		return 0;
	struct prefix_ctx pc = {
		.s = s, .f = f, .from = s->off[c & (LP_MAX_CAPS - 1)], .at = at, .equal = 1
	};
	bpf_loop(n, prefix_byte, &pc, 0);
	return pc.equal;
}

/* Runs op `index` of filter `f` (exec::admits) over the value stack kept
 * in the scratch record. Returns 0 to go on, 1 to stop: a value it needed
 * was not captured, which admits the hit. */
__noinline int lp_filter_op(struct lp_scratch *s, struct lp_filter *f, __u32 index)
{
	if (!s || !f)
		return 1;
	if (index >= LP_MAX_OPS)
		goto undecided;
	struct lp_op *op = &f->ops[index];
	__u32 depth = s->f_depth;
	__u32 pops = 0;
	__u64 v = 0;
	long pos;
	switch (op->kind) {
	case LP_OP_LOAD: {
		__u32 size = op->size;
		if (size < 1 || size > 8)
			goto undecided;
		pos = captured_at(s, op->capture, op->at, size);
		if (pos < 0)
			goto undecided;
		__builtin_memcpy(&v, &s->data[pos], 8);
		if (size < 8) {
			__u32 shift = 64 - 8 * size;
			v = op->is_signed ? (__u64)(((__s64)(v << shift)) >> shift)
						       : (v << shift) >> shift;
		}
		break;
	}
	case LP_OP_PUSH:
		v = op->value;
		break;
	case LP_OP_PREFIX: {
		__u32 c = op->capture;
		if (c >= s->f_taken || c >= LP_MAX_CAPS || s->len[c] == LP_UNREADABLE)
			goto undecided;
		v = has_prefix(s, f, c, op->at, op->size);
		break;
	}
	case LP_OP_CMP:
	case LP_OP_AND:
	case LP_OP_OR: {
		if (depth < 2)
			goto undecided;
		__u64 a = s->f_stack[(depth - 2) & (LP_FILTER_STACK - 1)];
		__u64 b = s->f_stack[(depth - 1) & (LP_FILTER_STACK - 1)];
		if (op->kind == LP_OP_CMP)
			v = cmp_holds(op->cmp, a, b, op->is_signed);
		else if (op->kind == LP_OP_AND)
			v = a && b;
		else
			v = a || b;
		pops = 2;
		break;
	}
	case LP_OP_NOT:
		if (depth < 1)
			goto undecided;
		v = !s->f_stack[(depth - 1) & (LP_FILTER_STACK - 1)];
		pops = 1;
		break;
	default:
		goto undecided;
	}
	depth -= pops;
	if (depth >= LP_FILTER_STACK)
		goto undecided;
	s->f_stack[depth & (LP_FILTER_STACK - 1)] = v;
	s->f_depth = depth + 1;
	return 0;
undecided:
	s->f_undecided = 1;
	return 1;
}

static long run_op(__u64 index, void *arg)
{
	struct loop_ctx *lc = arg;
	return lp_filter_op(lc->s, &lc->r->filter, index) ? 1 : 0;
}

/* Whether the recipe's filter admits the hit, with `taken` captures taken. */
static __always_inline int admits(struct lp_scratch *s, struct lp_recipe *r, __u32 taken)
{
	struct loop_ctx lc = { .s = s, .r = r, .start = 0 };
	__u32 nops = r->filter.nops;
	if (nops > LP_MAX_OPS)
		nops = LP_MAX_OPS;
	s->f_taken = taken;
	s->f_depth = 0;
	s->f_undecided = 0;
	s->f_stack[0] = 0;
	bpf_loop(nops, run_op, &lc, 0);
	return s->f_undecided || s->f_depth != 1 || s->f_stack[0] != 0;
}

/* The frame the hit is in (see struct lp_pair); 0 when its goroutine's
 * stack cannot be read. */
static __always_inline int frame_of(struct lp_recipe *r, struct lp_scratch *s, struct lp_frame *f)
{
	__u64 sp = s->regs[LP_REG_RSP];
	__u32 greg = r->pair.g_reg;
	f->key = r->pair.key;
	if (greg == LP_NO_G) {
		f->tid = s->ev.tid;
		f->g = 0;
		f->depth = sp;
		return 1;
	}
	if (greg >= LP_NREGS)
		return 0;
	__u64 g = s->regs[greg], hi = 0;
	if (bpf_probe_read_user(&hi, 8, (const void *)(g + r->pair.hi_at)))
		return 0;
	f->tid = 0;
	f->g = g;
	f->depth = hi - sp;
	return 1;
}

/* A second, in ns. */
#define LP_SECOND 1000000000ull
/* Compare-and-swaps a CPU may lose on one bucket before its hit counts as
 * over the limit (each lost to a CPU that took a token meanwhile). */
#define LP_TAKE_TRIES 8

/* Takes a token of `rate` a second at `now` from the bucket that was
 * empty at `*empty` (plan::Bucket::take, the same arithmetic); whether
 * there was one. */
static __always_inline int take(__u64 *empty, __u32 rate, __u64 now)
{
	if (!rate)
		return 1;
	__u64 interval = (LP_SECOND + rate - 1) / rate;
	__u64 span = (__u64)rate * interval;
	__u64 full = now > span ? now - span : 0;
	for (int i = 0; i < LP_TAKE_TRIES; i++) {
		__u64 old = *(volatile __u64 *)empty;
		__u64 next = (old > full ? old : full) + interval;
		if (next > now)
			return 0;
		if (__sync_val_compare_and_swap(empty, old, next) == old)
			return 1;
	}
	return 0;
}

/* Whether a hit of the probe in slot `slot` (recipe `r`) at `now` is
 * within its rate limits: its own, then the total (as exec::run); one
 * that is not is counted in its slot's bucket. Global, so verified once. */
__noinline int lp_within_rate(struct lp_recipe *r, __u32 slot, __u64 now)
{
	if (!r)
		return 1;
	__u32 zero = 0;
	struct lp_bucket *own = bpf_map_lookup_elem(&buckets, &slot);
	struct lp_bucket *all = bpf_map_lookup_elem(&total_bucket, &zero);
	if (!own || !all)
		return 1;
	if (take(&own->empty, r->rate, now) && take(&all->empty, r->total_rate, now))
		return 1;
	__sync_fetch_and_add(&own->limited, 1);
	return 0;
}

/* A hit of the probe in slot `slot` is lost (its CPU's scratch record
 * busy, the ring buffer or `pending` full): counted in the total and in
 * the slot's bucket. Global, so verified once. */
__noinline int lp_lost(__u32 slot)
{
	count(LP_COUNT_DROPS);
	struct lp_bucket *own = bpf_map_lookup_elem(&buckets, &slot);
	if (own)
		__sync_fetch_and_add(&own->lost, 1);
	return 0;
}

/* Whether a hit is left out before the rest of its captures, and why: 0
 * when it is reported, else the counter it is counted in. Its filter runs
 * once the captures it reads are taken (the scratch record's `f_taken`
 * then says how many: the caller goes on from there); then its rate
 * limits. Global, so verified once, not once per path of `hit`. */
__noinline int lp_left_out(struct lp_scratch *s, struct lp_recipe *r, __u32 slot)
{
	if (!s || !r)
		return 0;
	s->f_taken = 0;
	if (r->filter.nops) {
		__u32 after = r->filter.after;
		if (after > s->ev.ncaps)
			after = s->ev.ncaps;
		struct loop_ctx lc = { .s = s, .r = r, .start = 0 };
		bpf_loop(after, run_capture, &lc, 0);
		if (!admits(s, r, after))
			return LP_COUNT_FILTERED;
	}
	if ((r->rate || r->total_rate) && !lp_within_rate(r, slot, s->ev.time_ns))
		return LP_COUNT_LIMITED;
	return 0;
}

/* The hit is not reported: a filter rejected it, it is the return of a
 * call that was not reported (both counted as `LP_COUNT_FILTERED`), or
 * it is over a rate limit (`LP_COUNT_LIMITED`). An XMM slot it claimed is
 * given back (the signal already sent is a harmless spurious one). */
static __always_inline int reject(struct lp_scratch *s, __u32 why)
{
	if (s->xmm_state == 1)
		bpf_map_delete_elem(&claims, &s->xmm_key);
	count(why);
	s->busy = 0;
	return 0;
}

/* Parks a finished record of `size` bytes in the thread's claimed
 * `pending` slot until `lp_sigtramp` fills in its XMM captures. */
__noinline int lp_park(struct lp_scratch *s, __u64 size)
{
	if (!s)
		return 0;
	__u32 tid = s->ev.tid;
	__u32 key = s->xmm_key;
	struct lp_pending *p = bpf_map_lookup_elem(&pending, &key);
	if (!p || size > LP_PENDING_BYTES) {
		bpf_map_delete_elem(&claims, &key);
		lp_lost(s->ev.probe);
		return 0;
	}
	bpf_probe_read_kernel(p->rec, size, &s->ev);
	__u32 nxmm = s->nxmm;
	for (int k = 0; k < LP_MAX_XMM; k++) {
		if (k >= nxmm)
			break;
		p->off[k] = sizeof(s->ev) + s->xmm_off[k];
		p->reg[k] = s->xmm_reg[k];
	}
	p->nxmm = nxmm;
	p->tid = tid;
	p->size = size;
	return 0;
}

/* One hit of the probe in slot `id`, whose registers are `regs` (a
 * uprobe's context, or a perf event's copy of them). */
static __always_inline int hit(void *regs, __u32 id)
{
	struct lp_recipe *r = bpf_map_lookup_elem(&recipes, &id);
	if (!r)
		return 0;
	__u32 cpu = bpf_get_smp_processor_id();
	struct lp_scratch *s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s)
		return 0;
	__u64 flags = ((__u64 *)regs)[LP_REG_EFLAGS];
	if (r->guard_cc != LP_NO_GUARD && condition_holds(r->guard_cc, flags))
		return 0;
	count(LP_COUNT_HITS);
	/* Another hit on this CPU preempted one in flight: its scratch is in
	 * use, so this one is lost, and counted. */
	if (s->busy) {
		lp_lost(id);
		return 0;
	}
	s->busy = 1;
	__builtin_memcpy(s->regs, regs, sizeof(s->regs));
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	s->ev.probe = id;
	s->ev.pid = pid_tgid >> 32;
	s->ev.tid = (__u32)pid_tgid;
	s->ev.time_ns = bpf_ktime_get_ns();
	__u32 ncaps = r->ncaps;
	if (ncaps > LP_MAX_CAPS)
		ncaps = LP_MAX_CAPS;
	s->ev.ncaps = ncaps;
	s->used = 0;
	s->xmm_state = 0;
	s->nxmm = 0;
	/* A return is reported only when its call was. */
	struct lp_frame fr = {};
	__u32 role = r->pair.role;
	int framed = role != LP_PAIR_NONE && frame_of(r, s, &fr);
	if (framed && role == LP_PAIR_CLOSE && bpf_map_delete_elem(&frames, &fr))
		return reject(s, LP_COUNT_FILTERED);
	/* A call left out by its filter or a rate limit leaves its return
	 * out too. */
	__u32 why = lp_left_out(s, r, id);
	if (why) {
		if (framed && role == LP_PAIR_OPEN)
			bpf_map_delete_elem(&frames, &fr);
		return reject(s, why);
	}
	/* The captures the filter read are taken. */
	struct loop_ctx lc = { .s = s, .r = r, .start = s->f_taken };
	if (framed && role == LP_PAIR_OPEN) {
		__u8 one = 1;
		bpf_map_update_elem(&frames, &fr, &one, BPF_ANY);
	}
	if (ncaps > lc.start)
		bpf_loop(ncaps - lc.start, run_capture, &lc, 0);
	__u32 used = s->used;
	if (used > LP_DATA_SIZE)
		used = LP_DATA_SIZE;
	/* The lengths go right after the bytes. */
	__u32 lens = ncaps * 2;
	if (lens > 2 * LP_MAX_CAPS)
		lens = 2 * LP_MAX_CAPS;
	bpf_probe_read_kernel(&s->data[used], lens, s->len);
	__u64 size = sizeof(s->ev) + used + lens;
	if (s->xmm_state == 1) {
		lp_park(s, size);
		s->busy = 0;
		return 0;
	}
	if (bpf_ringbuf_output(&events, &s->ev, size, BPF_RB_NO_WAKEUP))
		lp_lost(s->ev.probe);
	s->busy = 0;
	return 0;
}

SEC("uprobe.multi")
int lp_probe(struct pt_regs *ctx)
{
	return hit(ctx, bpf_get_attach_cookie(ctx));
}

/* A function returned (a uretprobe on its entry, for a function whose
 * every exit is a RET and, unless it is C, that no unwind can pass
 * through: adapter/src/plan/unwind.rs. The kernel emulates the return
 * through its trampoline instead of single-stepping a probed RET.) The
 * registers are those after the RET: SP and RIP are put back as a probe
 * on the RET saw them, so recipes, frames and the load bias read the
 * same. */
SEC("uretprobe.multi")
int lp_return(struct pt_regs *ctx)
{
	__u64 regs[LP_NREGS];
	__builtin_memcpy(regs, ctx, sizeof(regs));
	__u32 slot = bpf_get_attach_cookie(ctx);
	struct lp_recipe *r = bpf_map_lookup_elem(&recipes, &slot);
	if (!r)
		return 0;
	regs[LP_REG_RSP] -= 8;
	regs[LP_REG_RIP] = bpf_get_func_ip(ctx) + r->ret_delta;
	return hit(regs, slot);
}

/* A hardware execute breakpoint fired: the instruction at the IP has not
 * run. The probe is found by that address; a goroutine that Go preempted
 * here (see lp_preempt) runs the instruction again, and that is not a
 * new call. */
SEC("perf_event")
int lp_breakpoint(struct bpf_perf_event_data *ctx)
{
	__u64 regs[LP_NREGS];
	__builtin_memcpy(regs, &ctx->regs, sizeof(regs));
	__u64 ip = regs[LP_REG_IP];
	__u32 *slot = bpf_map_lookup_elem(&breakpoints, &ip);
	if (!slot)
		return 0;
	__u64 g = regs[LP_REG_R14];
	struct lp_resume *again = bpf_map_lookup_elem(&preempted, &g);
	if (again) {
		int same = again->ip == ip && again->sp == regs[LP_REG_RSP];
		bpf_map_delete_elem(&preempted, &g);
		if (same)
			return 0;
	}
	return hit(regs, *slot);
}

/* Go's asyncPreempt starts (a uprobe on its first instruction): its
 * goroutine was preempted in a signal handler, and it returns, with every
 * register as it was, to the address on top of its stack. When that is a
 * breakpointed instruction, the breakpoint will fire there again. */
SEC("uprobe")
int lp_preempt(struct pt_regs *ctx)
{
	__u64 sp = ((__u64 *)ctx)[LP_REG_RSP];
	struct lp_resume at = { .sp = sp + 8 };
	if (bpf_probe_read_user(&at.ip, sizeof(at.ip), (const void *)sp))
		return 0;
	if (!bpf_map_lookup_elem(&breakpoints, &at.ip))
		return 0;
	__u64 g = ((__u64 *)ctx)[LP_REG_R14];
	bpf_map_update_elem(&preempted, &g, &at, BPF_ANY);
	return 0;
}

/* x86-64 ucontext_t: uc_mcontext (struct sigcontext) starts at byte 40;
 * in it, the interrupted RIP is at 128 and the pointer to the FXSAVE/XSAVE
 * area at 184. XMM n is at byte 160 + 16 n of that area. */
#define LP_UC_RIP (40 + 128)
#define LP_UC_FPSTATE (40 + 184)
#define LP_FX_XMM 160
/* pt_regs slots of the handler's arguments (signal, ucontext): at its
 * entry DI and DX; at Go's CALL runtime.sigtrampgo, AX and CX. */
#define LP_REG_RDI 14
#define LP_REG_RDX 12
#define LP_REG_RAX 10
#define LP_REG_RCX 11

/* The program's signal handler starts (a uprobe on its entry, Go's
 * runtime.sigtramp): when the signal is SIGURG and this thread has a hit
 * parked, the frame's saved vector registers are those at the probe (no
 * user code ran since). Unless another signal was delivered first at the
 * same return to user space: then this frame interrupted that signal's
 * handler at its entry (this same function, Go has one handler for all
 * signals; the probe's IP is the entry, or one past its breakpoint) with
 * cleared vector registers; the hit is then dropped, and
 * counted, rather than shown with wrong values. */
static __always_inline void complete(__u64 *regs, __u64 uc, __u64 entry, __u32 tid, __u32 key)
{
	__u32 *owner = bpf_map_lookup_elem(&claims, &key);
	if (!owner || *owner != tid)
		return;
	struct lp_pending *p = bpf_map_lookup_elem(&pending, &key);
	if (p && p->tid == tid && p->size) {
		__u64 fx = 0, rip = 0;
		int ok = bpf_probe_read_user(&fx, 8, (const void *)(uc + LP_UC_FPSTATE)) == 0 &&
			 bpf_probe_read_user(&rip, 8, (const void *)(uc + LP_UC_RIP)) == 0 &&
			 fx != 0 && rip != entry && rip + 1 != entry;
		__u32 nxmm = p->nxmm;
		for (int k = 0; k < LP_MAX_XMM; k++) {
			if (!ok || k >= nxmm)
				break;
			__u32 off = p->off[k];
			if (off > LP_PENDING_BYTES - 8)
				break;
			__u64 at = fx + LP_FX_XMM + 16 * (__u64)(p->reg[k] & 15);
			if (bpf_probe_read_user(&p->rec[off], 8, (const void *)at))
				ok = 0;
		}
		__u32 size = p->size;
		if (size > LP_PENDING_BYTES)
			size = LP_PENDING_BYTES;
		if (!ok || bpf_ringbuf_output(&events, p->rec, size, BPF_RB_NO_WAKEUP))
			lp_lost(((struct lp_event *)p->rec)->probe);
		p->size = 0;
	}
	bpf_map_delete_elem(&claims, &key);
}

/* The attach cookie: bit 0 set when the probe is on Go's CALL
 * runtime.sigtrampgo (an instruction the kernel emulates, so far cheaper
 * than the handler's first one, which it single-steps), the other bits
 * the probe's distance from the handler's entry. */
SEC("uprobe.multi")
int lp_sigtramp(struct pt_regs *ctx)
{
	/* A copy: the context may only be read at constant offsets. */
	__u64 regs[LP_NREGS];
	__builtin_memcpy(regs, ctx, sizeof(regs));
	__u64 cookie = bpf_get_attach_cookie(ctx);
	int at_call = cookie & 1;
	__u64 sig = at_call ? regs[LP_REG_RAX] : regs[LP_REG_RDI];
	if (sig != LP_SIGURG)
		return 0;
	__u64 uc = at_call ? regs[LP_REG_RCX] : regs[LP_REG_RDX];
	__u64 entry = regs[LP_REG_RIP] - (cookie >> 1);
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 key = 2 * (tid % LP_PENDING_THREADS);
	/* In the order the hits were parked. */
	complete(regs, uc, entry, tid, key);
	complete(regs, uc, entry, tid, key + 1);
	return 0;
}

/* x86-64 system call numbers of the writes that are marked. */
#define LP_NR_WRITE 1
#define LP_NR_WRITEV 20

/* The relay marks writes through the raw `sys_enter`/`sys_exit`
 * tracepoints, which are attached by name (BPF_RAW_TRACEPOINT_OPEN) and
 * need no tracefs, unlike the per-syscall `syscalls/sys_enter_write`
 * events. They fire for every system call of every process while they are
 * attached (only in launch mode with a relayed descriptor), so each
 * leaves at once unless the call is a write (entry) by the launched
 * program (entry and exit). */
static __always_inline int relayed_process(__u64 pid_tgid, struct lp_relay **out)
{
	__u32 zero = 0;
	struct lp_relay *r = bpf_map_lookup_elem(&relay, &zero);
	if (!r || r->tgid == 0 || (pid_tgid >> 32) != r->tgid)
		return 0;
	*out = r;
	return 1;
}

/* args: the system call's struct pt_regs *, its number. */
SEC("raw_tracepoint/sys_enter")
int lp_enter_write(struct bpf_raw_tracepoint_args *ctx)
{
	/* The number first: it costs no helper call. */
	long nr = ctx->args[1];
	if (nr != LP_NR_WRITE && nr != LP_NR_WRITEV)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct lp_relay *r;
	if (!relayed_process(pid_tgid, &r))
		return 0;
	/* The first argument, DI of the system call's struct pt_regs (whose
	 * layout is x86-64's user ABI, as in lp_probe). */
	unsigned long *regs = (void *)ctx->args[0];
	__u64 fd = 0;
	if (bpf_probe_read_kernel(&fd, sizeof(fd), regs + LP_REG_RDI))
		return 0;
	if (fd > 2 || !(r->fds & (1u << fd)))
		return 0;
	__u32 tid = (__u32)pid_tgid;
	__u32 fd32 = fd;
	bpf_map_update_elem(&writing, &tid, &fd32, BPF_ANY);
	return 0;
}

/* args: the system call's struct pt_regs *, its return value. */
SEC("raw_tracepoint/sys_exit")
int lp_exit_write(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct lp_relay *r;
	if (!relayed_process(pid_tgid, &r))
		return 0;
	__u32 tid = (__u32)pid_tgid;
	__u32 *fd = bpf_map_lookup_elem(&writing, &tid);
	if (!fd)
		return 0;
	struct lp_write w = { .mark = LP_WRITE_MARK, .fd = *fd, .bytes = 0 };
	bpf_map_delete_elem(&writing, &tid);
	long ret = ctx->args[1];
	if (ret <= 0)
		return 0;
	w.bytes = ret;
	/* A lost mark only costs ordering: logprobe relays unclaimed bytes
	 * after a moment. */
	bpf_ringbuf_output(&events, &w, sizeof(w), BPF_RB_NO_WAKEUP);
	return 0;
}

/* Never called: its signature brings struct lp_abi, and with it every
 * type user space needs that no map mentions, into the object's BTF, from
 * which libbpf-cargo generates the Rust side's types (probe.h). */
__noinline int lp_abi(struct lp_abi *abi)
{
	return abi ? 0 : 1;
}
