//! `cablebridge` command-line tool: a thin clap front end over the library crates.

fn main() {
    println!("cablebridge: the command set is being built; see README.md");
}
