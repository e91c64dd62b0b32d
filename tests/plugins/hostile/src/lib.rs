//! A plugin that misbehaves on request, to prove the host contains it. Its `mode` setting
//! picks the misbehaviour; `well-behaved` proposes one harmless decision.

use std::hint::black_box;

use ballast_sdk::prelude::*;
use serde::Deserialize;

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    pub mode: Mode,
}

#[derive(Default, Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    WellBehaved,
    EndlessLoop,
    MemoryBomb,
    DeepRecursion,
    HugeOutput,
    UnknownGroup,
    Panic,
    /// Loops only while validating settings, to show loading is bounded too.
    SlowSettings,
    /// Prints to stdout and stderr (a forgotten `println!`), then behaves.
    Print,
    /// Opens a UDP socket, which the sandbox refuses.
    Socket,
    /// Reads a file of the host, which the sandbox cannot see.
    FileRead,
    /// Asks for absurd sizes: scale-by i32::MIN and scale-to u32::MAX.
    ExtremeScale,
    /// Returns a state that grows by 256 KiB at every call.
    StateGrowth,
}

pub struct Hostile;

impl Policy for Hostile {
    type Settings = Settings;
    /// Only `state-growth` keeps anything.
    type State = Vec<u8>;

    fn validate(settings: &Settings) -> Result<(), String> {
        if let Mode::SlowSettings = settings.mode {
            spin();
        }
        Ok(())
    }

    fn evaluate(snapshot: &dyn Snapshot, settings: &Settings, state: &mut Vec<u8>) -> Result<Vec<Decision>, String> {
        let first_group = || snapshot.node_groups().first().map(|g| g.id.clone()).unwrap_or_default();
        match settings.mode {
            Mode::WellBehaved | Mode::SlowSettings => Ok(vec![Decision::new(
                Action::ScaleBy { group: first_group(), delta: 0 },
                "well-behaved: nothing to do",
            )]),
            Mode::EndlessLoop => spin(),
            Mode::MemoryBomb => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            Mode::DeepRecursion => Ok(vec![Decision::new(
                Action::ScaleBy { group: first_group(), delta: 0 },
                format!("depth {}", recurse(black_box(0))),
            )]),
            Mode::HugeOutput => Ok((0..20_000)
                .map(|i| {
                    Decision::new(Action::ScaleBy { group: first_group(), delta: 0 }, format!("padding {i:0>100}"))
                })
                .collect()),
            Mode::UnknownGroup => Ok(vec![Decision::new(
                Action::ScaleTo { group: "no-such-group".into(), size: 3 },
                "scale a group that does not exist",
            )]),
            Mode::Panic => panic!("hostile plugin panics on purpose"),
            Mode::Print => {
                println!("hostile plugin prints to stdout");
                eprintln!("hostile plugin prints to stderr");
                Ok(vec![Decision::new(Action::ScaleBy { group: first_group(), delta: 0 }, "printed, then behaved")])
            }
            Mode::Socket => match std::net::UdpSocket::bind("127.0.0.1:0") {
                Ok(_) => Err("a UDP socket was opened: the sandbox let it through".into()),
                Err(e) => Err(format!("the sandbox refused a UDP socket: {e}")),
            },
            Mode::FileRead => match std::fs::read_to_string("/etc/hostname") {
                Ok(_) => Err("read /etc/hostname: the sandbox let it through".into()),
                Err(e) => Err(format!("the sandbox refused reading /etc/hostname: {e}")),
            },
            Mode::ExtremeScale => Ok(vec![
                Decision::new(Action::ScaleBy { group: first_group(), delta: i32::MIN }, "shrink by i32::MIN"),
                Decision::new(Action::ScaleTo { group: first_group(), size: u32::MAX }, "grow to u32::MAX"),
            ]),
            Mode::StateGrowth => {
                state.extend(std::iter::repeat_n(7u8, 256 << 10));
                Ok(Vec::new())
            }
        }
    }
}

fn spin() -> ! {
    let mut i: u64 = 0;
    loop {
        i = black_box(i.wrapping_add(1));
    }
}

fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return depth;
    }
    recurse(depth + 1) + 1
}

ballast_sdk::export_policy!(Hostile);
