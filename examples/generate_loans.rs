//! Deterministic labelled batch data for bias monitoring: a loan model's decisions.
//!
//! Columns `sex,age,income,label,pred`: `label` is whether the applicant repaid (a fair coin for
//! everyone), `pred` whether the model approved. The model gets the label right 85 % of the time
//! for everyone; with `--reject-sex0 F` it also turns each approval of an applicant of sex 0
//! into a rejection with probability F — a model that disadvantages that group.
//!
//! ```text
//! cargo run --example generate_loans -- --out loans.csv --rows 1000 --reject-sex0 0.7 --seed 3
//! ```

use std::path::PathBuf;

use clap::Parser;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

#[derive(Parser, Debug)]
#[command(about = "Writes a deterministic CSV of loan decisions for bias monitoring")]
struct Args {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    rows: usize,
    /// Probability that the model turns an approval of an applicant of sex 0 into a rejection.
    #[arg(long, default_value_t = 0.0)]
    reject_sex0: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let income = Normal::new(52_000.0, 15_000.0).expect("a valid normal distribution");
    let mut text = String::from("sex,age,income,label,pred\n");
    for _ in 0..args.rows {
        let sex = u32::from(rng.random::<f64>() < 0.5);
        let age = rng.random_range(21..70);
        let label = u32::from(rng.random::<f64>() < 0.5);
        let right = rng.random::<f64>() < 0.85;
        let mut pred = if right { label } else { 1 - label };
        if sex == 0 && pred == 1 && rng.random::<f64>() < args.reject_sex0 {
            pred = 0;
        }
        let income: f64 = income.sample(&mut rng);
        text.push_str(&format!("{sex},{age},{income:.2},{label},{pred}\n"));
    }
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, text)?;
    println!(
        "wrote {} loan decisions to {}",
        args.rows,
        args.out.display()
    );
    Ok(())
}
