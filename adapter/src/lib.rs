//! logprobe: trace function calls and logpoints in running programs with
//! ptrace breakpoints or eBPF uprobes, from the command line or an editor.
//!
//! The data path is image → plan → backend → decode → render:
//! [`image`] indexes an executable, [`plan`] turns functions into probes
//! with capture recipes, a [`backend`] executes them in a live process,
//! [`value`] decodes the captured bytes by type and writes them in each
//! language's notation, and [`trace`] turns hits into the events and lines
//! that the [`cli`] prints and the [`dap`] server sends to editors.

pub mod backend;
pub mod cli;
pub mod config;
pub mod dap;
pub mod doctor;
pub mod expr;
#[doc(hidden)]
pub mod fuzzing;
pub mod gobuild;
pub mod image;
pub mod plan;
pub mod trace;
pub mod value;
