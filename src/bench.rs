pub fn run(_a: crate::cli::BenchArgs) -> anyhow::Result<()> { todo!() }
