//! Build script: links release builds of the binary with packaging/daemon-code.ld, which puts
//! the code the daemon runs in one block, so that its resident memory is that block and not
//! the whole text segment (see scripts/order-daemon-code).

fn main() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/daemon-code.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    // COMPOSER_KEYD_CODE_ORDER=0 links in the default order: scripts/order-daemon-code profiles
    // such a build, since valgrind names no function outside the .text section.
    println!("cargo:rerun-if-env-changed=COMPOSER_KEYD_CODE_ORDER");
    let wanted = std::env::var("COMPOSER_KEYD_CODE_ORDER").as_deref() != Ok("0");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if wanted && linux && release && script.exists() {
        // GNU ld and lld (rustc's default linker here, and cargo-zigbuild's) both take a
        // script that only inserts a section, leaving their default layout for the rest.
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
