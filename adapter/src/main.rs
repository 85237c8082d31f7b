//! The `logprobe` binary: the command line (`logprobe::cli`), its exit status.
//! Started with `--ptrace-tracer` it is the tracer process of an attached
//! program instead (`logprobe::backend::tracer`).

fn main() {
    if std::env::args_os().nth(1).as_deref() == Some(logprobe::backend::tracer::ARG.as_ref()) {
        std::process::exit(logprobe::backend::tracer::serve());
    }
    let code = match logprobe::cli::run() {
        Ok(code) => code,
        Err(e) => {
            let built = e
                .chain()
                .find_map(|c| c.downcast_ref::<logprobe::gobuild::BuildFailed>());
            match built {
                // The Go toolchain's own errors, a line each.
                Some(b) => eprintln!("logprobe: {}", b.to_string().trim_end()),
                None => {
                    // One line, whatever the causes say: a library's message
                    // (gimli's on corrupt DWARF) may be wrapped over several.
                    let message = format!("{e:#}");
                    let words: Vec<&str> = message.split_whitespace().collect();
                    eprintln!("logprobe: {}", words.join(" "));
                }
            }
            1
        }
    };
    std::process::exit(code);
}
