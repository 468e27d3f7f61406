fn main() -> anyhow::Result<()> {
    anyhow::bail!("report: not built yet")
}
