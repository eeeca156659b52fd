//! `mcpgw-shim`: what an MCP client launches; relays its stdio to the mcpgw daemon.

fn main() {
    let args = match mcpgw::shim::Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) if msg.is_empty() => {
            eprint!("{}", mcpgw::shim::USAGE);
            std::process::exit(0);
        }
        Err(msg) => {
            eprintln!("mcpgw-shim: {msg}\n{}", mcpgw::shim::USAGE);
            std::process::exit(2);
        }
    };
    if args.version {
        println!("mcpgw-shim {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    std::process::exit(mcpgw::shim::run(args));
}
