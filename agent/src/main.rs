fn main() -> anyhow::Result<()> {
    anyhow::bail!("p2p-agent: not built yet")
}
