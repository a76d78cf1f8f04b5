//! `memcacheq-stat`: db_stat's reports on a memcacheq home, plus a queue
//! overview (`-Q`) and `--peek`. See `memcacheq::inspect`.

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(memcacheq::inspect::stat_main(&argv));
}
