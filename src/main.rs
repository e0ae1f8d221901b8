//! The onggi binary: parses the command line and hands it to the library.

/// Rust's allocations go to dlmalloc, not to musl's malloc (mallocng), which hands memory back
/// to the kernel as it frees it and pays for that in system calls and page faults: parsing a
/// config.json and its copies cost ~0.15 ms more with it, ~0.35 ms per `run` in all (~0.55 ms
/// with the default seccomp profile's larger config). The C parts (libseccomp, libdbus) keep
/// musl's malloc. (make bench; README "Speed".) +13 KB of binary.
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    std::process::exit(onggi::cli::main(std::env::args_os().collect()));
}
