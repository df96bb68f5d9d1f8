//! Reading the marks a `report html` page draws: each element's attributes, as the tests
//! compare them with the JSON reports.

/// The attributes of every element `name` whose class is `class`, in document order.
pub fn marks(html: &str, name: &str, class: &str) -> Vec<Vec<(String, String)>> {
    let open = format!("<{name} ");
    html.split(&open)
        .skip(1)
        .map(|rest| {
            let tag = &rest[..rest.find('>').unwrap()];
            let mut attrs = Vec::new();
            let mut s = tag;
            while let Some(eq) = s.find("=\"") {
                let key = s[..eq].trim().to_owned();
                let end = eq + 2 + s[eq + 2..].find('"').unwrap();
                attrs.push((key, s[eq + 2..end].to_owned()));
                s = &s[end + 1..];
            }
            attrs
        })
        .filter(|a| a.iter().any(|(k, v)| k == "class" && v == class))
        .collect()
}

/// The value of attribute `key`; panics naming the attributes when it is missing.
pub fn get<'a>(attrs: &'a [(String, String)], key: &str) -> &'a str {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map_or_else(|| panic!("no {key} in {attrs:?}"), |(_, v)| v.as_str())
}
