//! Admin lists of every project (`all_tenants`) are federated: never the
//! admin project's servers passed off as everybody's.

use serde_json::Value;
use test_support::federation::federation;

fn ids(v: &Value) -> Vec<String> {
    v["servers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_lists_every_projects_servers_on_every_cloudlet() {
    let fed = federation(&[4, 4, 4]).await;
    let demo1 = fed.login(1, "demo").await;
    let demo2 = fed.login(2, "demo").await;
    let (a, owner_a) = fed.boot(1, &demo1, "tenant-a").await;
    let (b, owner_b) = fed.boot(2, &demo2, "tenant-b").await;
    assert_ne!(owner_a, owner_b, "local first: two cloudlets");
    let admin = fed.login(3, "admin").await;
    let url = format!("{}/servers/detail", fed.compute(3));
    // The admin's own project has none of them.
    let (s, _, v) = fed.call("GET", &url, Some(&admin), None).await;
    assert_eq!(s, 200, "{v}");
    assert!(!ids(&v).contains(&a) && !ids(&v).contains(&b), "{v}");
    // Every project, from every cloudlet.
    let (s, _, v) = fed
        .call("GET", &format!("{url}?all_tenants=1"), Some(&admin), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let all = ids(&v);
    assert!(all.contains(&a) && all.contains(&b), "{all:?}");
    // Paged like Nova: one per page, the next page by marker.
    let (s, _, v) = fed
        .call(
            "GET",
            &format!("{url}?all_tenants=1&limit=1"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v).len(), 1, "{v}");
    let next = v["servers_links"][0]["href"].as_str().expect("next link");
    assert!(next.contains("all_tenants=1"), "{next}");
    let (s, _, v2) = fed.call("GET", next, Some(&admin), None).await;
    assert_eq!(s, 200, "{v2}");
    assert_eq!(ids(&v2).len(), 1, "{v2}");
    assert_ne!(ids(&v), ids(&v2));
    // A project filter cannot be federated (IDs differ per cloudlet).
    let (s, _, v) = fed
        .call(
            "GET",
            &format!("{url}?all_tenants=1&project_id=x"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["badRequest"]["message"].as_str().is_some(), "{v}");
    // A member still may not.
    let (s, _, v) = fed
        .call("GET", &format!("{url}?all_tenants=1"), Some(&demo1), None)
        .await;
    assert_eq!(s, 403, "{v}");
}
