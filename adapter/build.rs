//! Compiles the kernel-side program in `bpf/` with clang and generates its
//! libbpf-rs skeleton into OUT_DIR (never committed), and builds the SIGURG
//! handler library the eBPF backend preloads into C, C++ and Rust programs
//! (`src/backend/ebpf/sigurg.c`, with the system's C compiler).

use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

/// A build failure: cargo prints it and stops the build.
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or("cargo did not set CARGO_MANIFEST_DIR")?,
    );
    let bpf = manifest.join("../bpf");
    let src = bpf.join("probe.bpf.c");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo did not set OUT_DIR")?)
        .join("probe.skel.rs");
    let mut args = vec![format!("-I{}", bpf.display())];
    // <linux/bpf.h> needs <asm/types.h>, which Debian keeps in the
    // multiarch include directory that clang's BPF target does not search.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    if std::path::Path::new(&multiarch).is_dir() {
        args.push(format!("-I{multiarch}"));
    }
    SkeletonBuilder::new()
        .source(&src)
        .clang_args(args)
        .build_and_generate(&out)
        .map_err(|e| format!("building {}: {e:#}", src.display()))?;
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", bpf.join("probe.h").display());
    build_preload(&manifest)
}

/// Builds `sigurg.so` into OUT_DIR; the binary embeds it.
fn build_preload(manifest: &std::path::Path) -> Result<()> {
    let src = manifest.join("src/backend/ebpf/sigurg.c");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo did not set OUT_DIR")?)
        .join("sigurg.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = std::process::Command::new(&cc)
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
        ])
        .arg(&out)
        .arg(&src)
        .status()
        .map_err(|e| format!("running {cc} to build {}: {e} (install gcc)", src.display()))?;
    if !status.success() {
        return Err(format!("{cc} failed to build {}: {status}", src.display()).into());
    }
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-env-changed=CC");
    Ok(())
}
