//! `memcacheq-upgrade`: moves a home written with an older Berkeley DB to
//! the release we link, or explains why not. See `memcacheq::inspect::upgrade`.

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(memcacheq::inspect::upgrade::upgrade_main(&argv));
}
