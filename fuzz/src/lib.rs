//! Helpers shared by the fuzz targets: turning raw fuzz bytes into inputs
//! that hit the interesting cases often (small alphabets so patterns and
//! requests collide), with a way out to arbitrary bytes so parsers still see
//! everything.

use libfuzzer_sys::arbitrary::{Result, Unstructured};

/// One of `words` most of the time, an arbitrary string otherwise.
pub fn word(u: &mut Unstructured<'_>, words: &[&str]) -> Result<String> {
    if u.ratio(7, 8)? {
        Ok((*u.choose(words)?).to_owned())
    } else {
        u.arbitrary()
    }
}

/// Up to `max` items drawn with `item`.
pub fn list<T>(
    u: &mut Unstructured<'_>,
    max: usize,
    mut item: impl FnMut(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let n = u.int_in_range(0..=max)?;
    (0..n).map(|_| item(u)).collect()
}

/// A single-threaded runtime for the async entry points (built once per
/// process: libFuzzer calls the target in a loop).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// A private directory for files a target writes, holding a copy of the
/// demo key files so configs that name `keys/...` load them.
pub fn scratch_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("weir-fuzz-{}", std::process::id()));
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).expect("scratch dir");
        for (name, body) in [
            (
                "demo-jwks.json",
                &include_bytes!("../../config/keys/demo-jwks.json")[..],
            ),
            (
                "demo-jwt.pub.pem",
                &include_bytes!("../../config/keys/demo-jwt.pub.pem")[..],
            ),
        ] {
            std::fs::write(keys.join(name), body).expect("key file");
            // The cluster's config names its JWK set beside itself.
            std::fs::write(dir.join(name), body).expect("key file");
        }
        dir
    })
}

/// Config text the targets refuse to load: paths into kernel file systems
/// (`/dev/zero`, `/proc/...`) make a file read hang or grow without bound,
/// which is an operator pointing at the wrong file, not a parser bug.
pub fn names_special_files(text: &str) -> bool {
    ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p))
}

/// The demo RS256 key pair (`config/keys`), for signing tokens in targets.
pub const DEMO_PRIVATE_PEM: &[u8] = include_bytes!("../../config/keys/demo-jwt.pem");
/// The demo JWK set (public half of [`DEMO_PRIVATE_PEM`], `kid: demo-1`).
pub const DEMO_JWKS: &str = include_str!("../../config/keys/demo-jwks.json");

/// A different client address on every call, so that throttling of failed
/// authentication per address (a defence the gateway has) never turns later
/// inputs away before the credential check the targets are fuzzing.
pub fn fresh_peer() -> std::net::IpAddr {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0x0a00_0001);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::net::IpAddr::V4(std::net::Ipv4Addr::from(n))
}
