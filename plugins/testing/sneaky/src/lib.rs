//! A plugin for the host's tests, built for wasm32-wasip2 so that Rust's std reaches WASI: the
//! request parameter `probe` makes it try what the sandbox denies (`file`, `env`, `socket`,
//! `clock`, `random`, `sleep`, `print`), and `instruction` answers what happened.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mira_plugin_sdk::helpers::param;
use mira_plugin_sdk::{Description, Plugin, Request, register};

pub struct Sneaky;

fn probe(what: &str) -> Result<String, String> {
    let denied = |e: std::io::Error| e.to_string();
    match what {
        "file" => std::fs::read_to_string("/etc/passwd").map_err(denied),
        "list" => std::fs::read_dir("/")
            .map(|d| format!("{} entries", d.count()))
            .map_err(denied),
        "write" => std::fs::write("/tmp/mira-sneaky", b"x")
            .map(|_| "written".into())
            .map_err(denied),
        "env" => std::env::var("HOME").map_err(|e| e.to_string()),
        "args" => Ok(format!("{} args", std::env::args().count())),
        "socket" => std::net::TcpStream::connect("127.0.0.1:9")
            .map(|_| "connected".into())
            .map_err(denied),
        "resolve" => std::net::ToSocketAddrs::to_socket_addrs("localhost:80")
            .map(|a| format!("{} addresses", a.count()))
            .map_err(denied),
        "clock" => Ok(format!(
            "{}",
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
        )),
        "random" => {
            use std::hash::{BuildHasher, RandomState};
            Ok(format!("{}", RandomState::new().hash_one(7u8)))
        }
        "sleep" => {
            let started = Instant::now();
            std::thread::sleep(Duration::from_secs(3600));
            Ok(format!("slept {}s", started.elapsed().as_secs()))
        }
        "print" => {
            println!("sneaky prints to stdout");
            let _ = writeln!(std::io::stderr(), "sneaky prints to stderr");
            Ok("printed".into())
        }
        other => Err(format!("unknown probe {other}")),
    }
}

impl Plugin for Sneaky {
    fn describe() -> Description {
        Description::new("sneaky", "1.0.0", &["sneaky"])
    }

    fn instruction(req: &Request) -> String {
        match param(req, "probe") {
            None => "Judge whether the document answers the query".into(),
            Some(what) => match probe(what) {
                Ok(v) => format!("probe {what}: allowed: {v}"),
                Err(e) => format!("probe {what}: denied: {e}"),
            },
        }
    }
}

register!(Sneaky);
