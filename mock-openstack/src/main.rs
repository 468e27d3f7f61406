fn main() -> anyhow::Result<()> {
    anyhow::bail!("mock-openstack: not built yet")
}
