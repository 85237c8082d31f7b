/* The layout shared by the BPF program (probe.bpf.c) and the Rust side:
 * one serialized capture recipe per probe, the event record each hit
 * emits, and the marks of relayed writes.
 *
 * This header is the one definition. The Rust side does not copy it: the
 * skeleton that libbpf-cargo generates from the object's BTF holds a Rust
 * type for every structure and enum here (`skel::types`), and
 * adapter/src/backend/ebpf/abi.rs reads and writes through those. So
 * constants are enums, not #defines (a #define never reaches the BTF);
 * kinds stored in a byte are packed enums used as the field's type; and
 * `struct lp_abi` at the end names what no map mentions.
 *
 * Semantics are those of adapter/src/backend/exec.rs, the reference
 * executor: captures run in order, each yields bytes or "unreadable". */
#ifndef LOGPROBE_PROBE_H
#define LOGPROBE_PROBE_H

enum lp_limit {
	/* Most capture steps in one recipe (plan::MAX_CAPTURES). */
	LP_MAX_CAPS = 512,
	/* Most bytes one capture step may read (plan::MAX_READ). */
	LP_MAX_CAP_LEN = 32768,
	/* Most bytes all captures of one hit read together
	 * (plan::MAX_RECIPE_BYTES). */
	LP_MAX_HIT_BYTES = 65536,
	/* A power of two above LP_MAX_HIT_BYTES: the scratch record's size. */
	LP_DATA_SIZE = 131072,
	LP_PAGE = 4096,
	/* Slots of struct pt_regs (x86-64) the program copies. */
	LP_NREGS = 21,
	LP_REG_EFLAGS = 18,
	LP_REG_RSP = 19,
	LP_REG_RBP = 4,
	/* Most frames one FRAMES capture walks (plan::MAX_STACK_FRAMES). */
	LP_MAX_STACK = 128,
	/* Most XMM captures in one recipe that are read through a signal
	 * frame; further ones are unreadable. */
	LP_MAX_XMM = 16,
	/* Hits waiting for their thread's signal frame: two slots per thread
	 * (two probes on one instruction, a frameless function's entry and
	 * return at its RET, both wait for the same frame), at
	 * 2 * (tid % LP_PENDING_THREADS) and the one after. */
	LP_PENDING_THREADS = 64,
	LP_PENDING = 2 * LP_PENDING_THREADS,
	/* Most bytes of one record that can wait there. */
	LP_PENDING_BYTES = 24 + LP_DATA_SIZE + 2 * LP_MAX_CAPS,
	/* A filter (plan::Filter): most ops, most bytes of prefixes, and the
	 * depth of its value stack (plan::MAX_FILTER_OPS, MAX_FILTER_BYTES). */
	LP_MAX_OPS = 32,
	LP_MAX_FILTER_BYTES = 64,
	LP_FILTER_STACK = 8,
	/* Open frames kept (exec::MAX_FRAMES). */
	LP_MAX_FRAMES = 65536,
	/* Probes armed by a hardware breakpoint: x86 has four debug
	 * registers per thread. */
	LP_MAX_BREAKPOINTS = 4,
	/* Goroutines whose async preemption (Go's asyncPreempt) will return
	 * to a breakpointed instruction, remembered at once. */
	LP_MAX_PREEMPTED = 4096,
	/* pt_regs slots of the registers a breakpoint hit is named by. */
	LP_REG_R14 = 1,
	LP_REG_IP = 16,
};

/* Values with a meaning of their own in fields that otherwise hold
 * numbers. */
enum lp_mark {
	/* A capture's length in a record when it could not be read. */
	LP_UNREADABLE = 0xffff,
	/* `guard_cc` of a probe without a guard. */
	LP_NO_GUARD = 0xff,
	/* `g_reg` of a pairing without goroutines. */
	LP_NO_G = 0xff,
	/* `probe` of a record that is a struct lp_write, not a hit. */
	LP_WRITE_MARK = 0xffffffffu,
};

/* Counter slots (a per-CPU array). */
enum lp_counter {
	LP_COUNT_HITS,
	LP_COUNT_DROPS,
	/* Hits a filter rejected, or returns of calls it rejected or a rate
	 * limit left out. */
	LP_COUNT_FILTERED,
	/* Hits over a rate limit (each also in its slot's struct
	 * lp_bucket). */
	LP_COUNT_LIMITED,
	LP_NCOUNTERS,
};

enum lp_cap_kind {
	LP_CAP_NONE = 0, /* a step past `ncaps` */
	LP_CAP_REG = 1,
	LP_CAP_XMM = 2,
	LP_CAP_STACK = 3,
	LP_CAP_DEREF = 4,
	/* Return addresses: the one below the CFA (reg + add), then the
	 * frame pointer chain's; `len` of them at most (exec.rs frames). */
	LP_CAP_FRAMES = 5,
} __attribute__((packed));

/* How a Deref's length is found. */
enum lp_len_kind {
	LP_LEN_FIXED = 0,
	LP_LEN_COUNTED = 1,
	/* (1 << the byte at count_offset) * len, at most max */
	LP_LEN_SHIFTED = 2,
} __attribute__((packed));

struct lp_capture {
	enum lp_cap_kind kind;
	__u8 reg; /* REG, FRAMES (the CFA's): pt_regs slot; XMM: register number */
	enum lp_len_kind len_kind; /* DEREF */
	__u8 pad;
	__u16 base;   /* DEREF: capture holding the address ... */
	__u16 offset; /* ... at this byte */
	__s32 add;    /* DEREF: added to the address; STACK: offset from SP */
	__u32 len;    /* STACK, DEREF fixed: bytes; DEREF counted, shifted: scale */
	__u16 count_capture; /* DEREF counted, shifted: capture holding the count ... */
	__u16 count_offset;  /* ... at this byte */
	__u32 max;           /* DEREF counted, shifted: most bytes */
};

/* A filter's ops (plan::FilterOp): a postfix program over a stack of
 * LP_FILTER_STACK u64s, run once the first `after` captures are taken. */
enum lp_op_kind {
	LP_OP_NONE = 0,   /* an op past `nops` */
	LP_OP_LOAD = 1,   /* push `size` bytes at `at` of capture `capture` */
	LP_OP_PUSH = 2,   /* push `value` */
	LP_OP_CMP = 3,    /* pop b, a; push a `cmp` b */
	LP_OP_PREFIX = 4, /* push: capture `capture` begins with bytes[at..at+size] */
	LP_OP_AND = 5,
	LP_OP_OR = 6,
	LP_OP_NOT = 7,
} __attribute__((packed));

enum lp_cmp {
	LP_CMP_EQ,
	LP_CMP_NE,
	LP_CMP_LT,
	LP_CMP_LE,
	LP_CMP_GT,
	LP_CMP_GE,
} __attribute__((packed));

/* `signed` of LOAD (sign-extend) and CMP. */
struct lp_op {
	enum lp_op_kind kind;
	__u8 size;
	__u8 is_signed;
	enum lp_cmp cmp;
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
enum lp_pair_role {
	LP_PAIR_NONE,
	LP_PAIR_OPEN,
	LP_PAIR_CLOSE,
} __attribute__((packed));

struct lp_pair {
	enum lp_pair_role role;
	__u8 g_reg;  /* pt_regs slot of the goroutine's g, or LP_NO_G */
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
	/* For a return probe armed as a uretprobe on its function's entry
	 * (`lp_return`): the distance from that entry to the RET the probe
	 * stands for, so that the hit's RIP is the RET's, as at a RET probe. */
	__u32 ret_delta;
	/* Rate limits (plan::RateLimit), hits a second: this probe's, all
	 * probes' together; 0: none. Checked once the filter admits a hit. */
	__u32 rate;
	__u32 total_rate;
	struct lp_pair pair;
	struct lp_filter filter;
	struct lp_capture caps[LP_MAX_CAPS];
};

/* A token bucket of a rate limit (plan::Bucket): the time (ns) at which
 * it was empty, one word so that CPUs hitting at once update it by
 * compare-and-swap; and the hits its probe had over a rate limit (in a
 * slot's bucket; user space reads them). */
struct lp_bucket {
	__u64 empty;
	__u64 limited;
	/* Hits of the slot's probe lost before user space could read them
	 * (also counted in LP_COUNT_DROPS), so that a face can say whose. */
	__u64 lost;
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

/* Whether XMM captures may go through a signal frame, and where to read
 * in the running kernel's structures whether a thread handles SIGURG
 * (byte offsets, found by user space in the kernel's BTF: the work CO-RE
 * would do at every load, done only when a probe captures XMM
 * registers, so that loading the program needs no BTF). */
struct lp_sigxmm {
	__u32 on;
	__u32 sighand;        /* task_struct.sighand */
	__u32 sigurg_handler; /* sighand_struct.action[SIGURG - 1].sa.sa_handler */
	__u32 blocked;        /* task_struct.blocked.sig[0] */
};

/* Where a goroutine preempted asynchronously by Go (asyncPreempt) will
 * resume: a breakpointed instruction it will run again, not a new call. */
struct lp_resume {
	__u64 ip;
	__u64 sp;
};

/* What user space reads or writes that no map's type mentions, gathered
 * so that it reaches the BTF (see lp_abi() in probe.bpf.c). */
struct lp_abi {
	struct lp_write write;
	enum lp_limit limit;
	enum lp_mark mark;
	enum lp_counter counter;
};

#endif
