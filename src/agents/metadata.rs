//! OCF meta-data XML for the built-in agents, made from their [`AgentInfo`]
//! so that `hactl ra info` and the `meta-data` action say the same thing.

use super::AgentInfo;

/// The OCF 1.1 meta-data document describing `info`.
pub fn to_xml(info: &AgentInfo) -> String {
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\"?>\n");
    x.push_str(&format!(
        "<resource-agent name=\"{}\" version=\"1.0\">\n",
        esc(&info.name)
    ));
    x.push_str("  <version>1.1</version>\n");
    x.push_str(&format!(
        "  <longdesc lang=\"en\">{}</longdesc>\n",
        esc(&info.longdesc)
    ));
    x.push_str(&format!(
        "  <shortdesc lang=\"en\">{}</shortdesc>\n",
        esc(&info.shortdesc)
    ));
    x.push_str("  <parameters>\n");
    for p in &info.params {
        x.push_str(&format!(
            "    <parameter name=\"{}\" required=\"{}\">\n",
            esc(&p.name),
            u8::from(p.required)
        ));
        x.push_str(&format!(
            "      <longdesc lang=\"en\">{}</longdesc>\n",
            esc(&p.longdesc)
        ));
        x.push_str(&format!(
            "      <shortdesc lang=\"en\">{}</shortdesc>\n",
            esc(&p.shortdesc)
        ));
        match &p.default {
            Some(d) => x.push_str(&format!(
                "      <content type=\"{}\" default=\"{}\"/>\n",
                esc(&p.content_type),
                esc(d)
            )),
            None => x.push_str(&format!(
                "      <content type=\"{}\"/>\n",
                esc(&p.content_type)
            )),
        }
        x.push_str("    </parameter>\n");
    }
    x.push_str("  </parameters>\n  <actions>\n");
    for (name, timeout) in &info.actions {
        match timeout {
            Some(t) => x.push_str(&format!(
                "    <action name=\"{}\" timeout=\"{}s\"/>\n",
                esc(name),
                t.as_secs()
            )),
            None => x.push_str(&format!("    <action name=\"{}\"/>\n", esc(name))),
        }
    }
    x.push_str("  </actions>\n</resource-agent>\n");
    x
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::ParamInfo;
    use std::time::Duration;

    #[test]
    fn meta_data_is_well_formed_xml_with_every_parameter_and_action() {
        let info = AgentInfo {
            name: "ipaddr".into(),
            shortdesc: "a <virtual> IP".into(),
            longdesc: "long & \"quoted\"".into(),
            params: vec![ParamInfo {
                name: "ip".into(),
                required: true,
                content_type: "string".into(),
                default: None,
                shortdesc: "address".into(),
                longdesc: "the address".into(),
            }],
            actions: vec![
                ("start".into(), Some(Duration::from_secs(20))),
                ("meta-data".into(), None),
            ],
        };
        let xml = to_xml(&info);
        let doc = roxmltree::Document::parse(&xml).expect("meta-data parses as XML");
        let root = doc.root_element();
        assert_eq!(root.attribute("name"), Some("ipaddr"));
        let shortdesc = root
            .children()
            .find(|n| n.has_tag_name("shortdesc"))
            .unwrap();
        assert_eq!(shortdesc.text(), Some("a <virtual> IP"));
        let param = root
            .descendants()
            .find(|n| n.has_tag_name("parameter"))
            .unwrap();
        assert_eq!(param.attribute("required"), Some("1"));
        let actions: Vec<_> = root
            .descendants()
            .filter(|n| n.has_tag_name("action"))
            .map(|n| (n.attribute("name").unwrap(), n.attribute("timeout")))
            .collect();
        assert_eq!(actions, vec![("start", Some("20s")), ("meta-data", None)]);
    }
}
