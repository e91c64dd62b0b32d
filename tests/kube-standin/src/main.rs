//! `kube-standin [--listen ADDR] [--no-metrics]`: the stand-in as a process, for kubectl by
//! hand or for benchmarks. Prints a kubeconfig to stdout and serves until interrupted.

use kube_standin::{Config, StandIn};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:0".to_string();
    let mut config = Config::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "--no-metrics" => config.metrics = false,
            other => {
                eprintln!("unknown argument {other:?}; usage: kube-standin [--listen ADDR] [--no-metrics]");
                std::process::exit(2);
            }
        }
    }
    let standin = StandIn::bind(&listen, config).await?;
    eprintln!("kube-standin serving on {}", standin.url());
    print!("{}", standin.kubeconfig());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
