fn main() -> anyhow::Result<()> {
    anyhow::bail!("loadgen: not built yet")
}
