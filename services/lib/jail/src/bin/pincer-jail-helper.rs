//! A binary that is only the jail helper, for the crate's own tests and benches (and for
//! any caller that prefers a separate helper over re-executing itself).

fn main() {
    pincer_jail::run_helper_if_requested();
    eprintln!("pincer-jail-helper: start me through pincer_jail::Jail::with_helper");
    std::process::exit(2);
}
