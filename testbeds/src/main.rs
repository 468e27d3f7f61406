fn main() -> anyhow::Result<()> {
    anyhow::bail!("testbed: not built yet")
}
