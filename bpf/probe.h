/* The layout shared by the BPF program (probe.bpf.c) and the Rust side
 * (adapter/src/backend/ebpf.rs mirrors it byte for byte): one serialized
 * capture recipe per probe, and the event record each hit emits.
 *
 * Semantics are those of adapter/src/backend/exec.rs, the reference
 * executor: captures run in order, each yields bytes or "unreadable". */
#ifndef LOGPROBE_PROBE_H
#define LOGPROBE_PROBE_H

/* Most capture steps in one recipe (plan::MAX_CAPTURES). */
#define LP_MAX_CAPS 512
/* Most bytes one capture step may read (plan::MAX_READ). */
#define LP_MAX_CAP_LEN 32768
/* A power of two above the most bytes all captures of one hit read
 * together (plan::MAX_RECIPE_BYTES, 64 KiB). */
#define LP_DATA_SIZE 131072
#define LP_PAGE 4096
/* `len` of a capture that could not be read. */
#define LP_UNREADABLE 0xffff
/* `guard_cc` of a probe without a guard. */
#define LP_NO_GUARD 0xff
/* Slots of struct pt_regs (x86-64) the program copies. */
#define LP_NREGS 21
#define LP_REG_EFLAGS 18
#define LP_REG_RSP 19

/* Capture kinds. */
#define LP_CAP_REG 1
#define LP_CAP_XMM 2
#define LP_CAP_STACK 3
#define LP_CAP_DEREF 4

/* How a Deref's length is found. */
#define LP_LEN_FIXED 0
#define LP_LEN_COUNTED 1
#define LP_LEN_SHIFTED 2 /* (1 << the byte at count_offset) * len, at most max */

/* Most XMM captures in one recipe that are read through a signal frame;
 * further ones are unreadable. */
#define LP_MAX_XMM 16
/* Hits waiting for their thread's signal frame: two slots per thread
 * (two probes on one instruction, a frameless function's entry and
 * return at its RET, both wait for the same frame), at
 * 2 * (tid % LP_PENDING_THREADS) and the one after. */
#define LP_PENDING_THREADS 64
#define LP_PENDING (2 * LP_PENDING_THREADS)
/* Most bytes of one record that can wait there. */
#define LP_PENDING_BYTES (24 + LP_DATA_SIZE + 2 * LP_MAX_CAPS)

/* Counter slots (a per-CPU array). */
#define LP_COUNT_HITS 0
#define LP_COUNT_DROPS 1
/* Hits a filter rejected, or returns of calls it rejected. */
#define LP_COUNT_FILTERED 2
#define LP_NCOUNTERS 3

struct lp_capture {
	__u8 kind;     /* LP_CAP_* */
	__u8 reg;      /* REG: pt_regs slot; XMM: register number */
	__u8 len_kind; /* DEREF: LP_LEN_* */
	__u8 pad;
	__u16 base;    /* DEREF: capture holding the address ... */
	__u16 offset;  /* ... at this byte */
	__s32 add;     /* DEREF: added to the address; STACK: offset from SP */
	__u32 len;     /* STACK, DEREF fixed: bytes; DEREF counted, shifted: scale */
	__u16 count_capture; /* DEREF counted, shifted: capture holding the count ... */
	__u16 count_offset;  /* ... at this byte */
	__u32 max;           /* DEREF counted, shifted: most bytes */
};

/* A filter's ops (plan::FilterOp): a postfix program over a stack of
 * LP_FILTER_STACK u64s, run once the first `after` captures are taken. */
#define LP_MAX_OPS 32
#define LP_MAX_FILTER_BYTES 64
#define LP_FILTER_STACK 8
#define LP_OP_LOAD 1   /* push `size` bytes at `at` of capture `capture` */
#define LP_OP_PUSH 2   /* push `value` */
#define LP_OP_CMP 3    /* pop b, a; push a CMP b (`size`: LP_CMP_*) */
#define LP_OP_PREFIX 4 /* push: capture `capture` begins with bytes[at..at+size] */
#define LP_OP_AND 5
#define LP_OP_OR 6
#define LP_OP_NOT 7
#define LP_OP_SIGNED 1 /* `flags` of LOAD (sign-extend) and CMP */
#define LP_CMP_EQ 0
#define LP_CMP_NE 1
#define LP_CMP_LT 2
#define LP_CMP_LE 3
#define LP_CMP_GT 4
#define LP_CMP_GE 5

struct lp_op {
	__u8 kind;  /* LP_OP_* */
	__u8 size;
	__u8 flags;
	__u8 pad;
	__u16 capture;
	__u16 at;
	__u64 value;
};

struct lp_filter {
	__u32 nops; /* 0: no filter */
	__u32 after;
	struct lp_op ops[LP_MAX_OPS];
	__u8 bytes[LP_MAX_FILTER_BYTES];
};

/* Pairing of calls with returns (plan::Pairing). */
#define LP_PAIR_NONE 0
#define LP_PAIR_OPEN 1
#define LP_PAIR_CLOSE 2
#define LP_NO_G 0xff
/* Open frames kept (exec::MAX_FRAMES). */
#define LP_MAX_FRAMES 65536

struct lp_pair {
	__u8 role;  /* LP_PAIR_* */
	__u8 g_reg; /* pt_regs slot of the goroutine's g, or LP_NO_G */
	__u16 hi_at; /* byte of g.stack.hi in the g */
	__u32 key;
};

/* A frame: key, thread (0 with goroutines), g, depth (stack.hi - SP; SP
 * without goroutines). */
struct lp_frame {
	__u32 key;
	__u32 tid;
	__u64 g;
	__u64 depth;
};

struct lp_recipe {
	__u32 ncaps;
	__u32 guard_cc; /* x86 condition code, or LP_NO_GUARD */
	struct lp_pair pair;
	struct lp_filter filter;
	struct lp_capture caps[LP_MAX_CAPS];
};

/* One hit: this header, then the captured bytes of every readable capture
 * packed in capture order, then `ncaps` __u16 lengths (bytes captured, or
 * LP_UNREADABLE), one per capture. */
struct lp_event {
	__u32 probe;
	__u32 pid;
	__u32 tid;
	__u32 ncaps;
	__u64 time_ns;
};

/* `probe` of a record that marks a write by the launched program to a
 * relayed stdout/stderr (struct lp_write), not a probe hit. */
#define LP_WRITE_MARK 0xffffffffu

/* Which process's writes to which of fds 1 and 2 are marked. */
struct lp_relay {
	__u32 tgid;
	__u32 fds; /* bit n: fd n */
};

/* The program wrote `bytes` bytes to `fd`: they are in the relay pipe,
 * and every hit recorded before this mark on the writing thread came
 * before them. */
struct lp_write {
	__u32 mark; /* LP_WRITE_MARK */
	__u32 fd;
	__u64 bytes;
};

#endif
