//! The onggi binary: parses the command line and hands it to the library.

fn main() {
    std::process::exit(onggi::cli::main(std::env::args_os().collect()));
}
