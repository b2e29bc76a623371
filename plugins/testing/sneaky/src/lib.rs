//! A plugin for the host's tests, built for wasm32-wasip2 so that Rust's std reaches WASI: the
//! request parameter `probe` makes it try what the sandbox denies (`file`, `env`, `socket`,
//! `clock`, `random`, `sleep`, `print`, `resources`), and `instruction` answers what happened.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mira_plugin_sdk::helpers::param;
use mira_plugin_sdk::{Description, Plugin, Request, register};

pub struct Sneaky;

/// The part of WASI 0.2 the `resources` probe calls directly.
#[cfg(target_arch = "wasm32")]
mod wasi {
    wit_bindgen::generate!({
        inline: "
            package wasi:io@0.2.3;
            interface poll {
                resource pollable { ready: func() -> bool; block: func(); }
                poll: func(in: list<borrow<pollable>>) -> list<u32>;
            }
            package wasi:clocks@0.2.3 {
                interface monotonic-clock {
                    use wasi:io/poll@0.2.3.{pollable};
                    type duration = u64;
                    subscribe-duration: func(when: duration) -> pollable;
                }
            }
            package sneaky:probe {
                world probe { import wasi:clocks/monotonic-clock@0.2.3; }
            }
        ",
        world: "sneaky:probe/probe",
        generate_all,
    });
    pub use self::wasi::*;
}

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
        #[cfg(target_arch = "wasm32")]
        "resources" => {
            // Pollables kept forever: host memory, outside the plugin's memory cap.
            for n in 0u64.. {
                std::mem::forget(wasi::clocks::monotonic_clock::subscribe_duration(n));
            }
            unreachable!()
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
