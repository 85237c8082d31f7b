//! The `logprobe` binary: the command line (`logprobe::cli`), its exit status.

fn main() {
    let code = match logprobe::cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("logprobe: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
