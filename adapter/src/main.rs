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
