//! `memcacheq-top [--once] [-i SECONDS] [HOST:PORT]`: a live view of a
//! server's queues, like `top`, over the memcache text protocol alone, so
//! it watches MemcacheQ 0.2.1 as well.
//!
//! - `poll`: the protocol client and the parsing of `stats`, `dump_stats`
//!   and `stats queue`.
//! - `view`: two polls as a table (rates, order, cells) and as plain text.
//! - `live`: the terminal view (ratatui).

mod live;
mod poll;
mod view;

use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use getopts::Options;

use poll::Poller;
use view::View;

/// Where MemcacheQ listens unless told otherwise.
const DEFAULT_ADDR: &str = "127.0.0.1:22201";

fn options() -> Options {
    let mut o = Options::new();
    o.optflag(
        "",
        "once",
        "print one report as plain text and exit (two polls an interval apart, for the rates)",
    );
    o.optopt(
        "i",
        "interval",
        "seconds between polls (default 1)",
        "SECONDS",
    );
    o.optflag("h", "help", "this help");
    o
}

fn usage(o: &Options) -> String {
    o.usage("Usage: memcacheq-top [options] [HOST:PORT]   (default 127.0.0.1:22201)")
}

fn main() -> ExitCode {
    let o = options();
    let args = match o.parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("memcacheq-top: {e}\n{}", usage(&o));
            return ExitCode::from(2);
        }
    };
    if args.opt_present("help") {
        print!("{}", usage(&o));
        return ExitCode::SUCCESS;
    }
    let interval = match args.opt_str("interval").map(|s| s.parse::<f64>()) {
        None => Duration::from_secs(1),
        Some(Ok(s)) if s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
        Some(_) => {
            eprintln!("memcacheq-top: --interval takes seconds, more than 0 and at most 86400");
            return ExitCode::from(2);
        }
    };
    let addr = match args.free.as_slice() {
        [] => DEFAULT_ADDR,
        [addr] => addr.as_str(),
        _ => {
            eprintln!("memcacheq-top: one HOST:PORT at most\n{}", usage(&o));
            return ExitCode::from(2);
        }
    };
    let outcome = if args.opt_present("once") {
        once(addr, interval).map(|text| print!("{text}"))
    } else {
        live::run(addr, interval)
            .map_err(|e| format!("the terminal: {e} (--once prints plain text)"))
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memcacheq-top: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--once`: two polls `interval` apart, so that the rates are there.
fn once(addr: &str, interval: Duration) -> Result<String, String> {
    let mut poller = Poller::new(addr);
    let before = poller.poll()?;
    thread::sleep(interval);
    let now = poller.poll()?;
    Ok(View::new(addr, Some(&before), &now).to_text())
}
