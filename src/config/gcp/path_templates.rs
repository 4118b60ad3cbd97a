//! URL-map path templates (`pathTemplateMatch`, `pathTemplateRewrite`), checked as the cloud
//! checks them: a match is `/`-separated segments, each a literal, `*`, `**` (last segment
//! only) or a variable `{name}`, `{name=*}`, `{name=**}`, at most five variables, each named
//! once; a rewrite is literals and `{name}` references to the match's variables. Envoy's
//! uri_template extensions take the same syntax, so a checked template is passed on as written.

/// The variables a match template captures; else why it is not a template.
pub fn match_variables(template: &str) -> Result<Vec<String>, String> {
    let Some(rest) = template.strip_prefix('/') else {
        return Err("a path template starts with `/`".into());
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let mut variables: Vec<String> = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        let last = index + 1 == segments.len();
        let operator = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(inside) => {
                let (name, operator) = inside.split_once('=').unwrap_or((inside, "*"));
                check_name(name)?;
                if variables.iter().any(|v| v == name) {
                    return Err(format!("the variable `{name}` is named twice"));
                }
                variables.push(name.to_string());
                operator
            }
            None => segment,
        };
        match operator {
            "*" => {}
            "**" if last => {}
            "**" => return Err("`**` may only be the last segment".into()),
            literal => check_literal(literal)?,
        }
    }
    if variables.len() > 5 {
        return Err(format!(
            "{} variables; a path template captures at most 5",
            variables.len()
        ));
    }
    Ok(variables)
}

/// Checks a rewrite template against the variables its rule's match templates capture.
pub fn check_rewrite(template: &str, variables: &[String]) -> Result<(), String> {
    if !template.starts_with('/') {
        return Err("a path template rewrite starts with `/`".into());
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        check_literal(&rest[..open].replace('/', ""))?;
        let Some(close) = rest[open..].find('}') else {
            return Err("a `{` without its `}`".into());
        };
        let name = &rest[open + 1..open + close];
        check_name(name)?;
        if !variables.iter().any(|v| v == name) {
            return Err(format!(
                "`{{{name}}}` is not a variable of the rule's pathTemplateMatch (it captures: {})",
                if variables.is_empty() {
                    "none".to_string()
                } else {
                    variables.join(", ")
                }
            ));
        }
        rest = &rest[open + close + 1..];
    }
    check_literal(&rest.replace('/', ""))
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid && name.len() <= 64 {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a variable name (a letter, then letters, digits or `_`)"
        ))
    }
}

fn check_literal(literal: &str) -> Result<(), String> {
    match literal
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~%!$&'()+,;:@=".contains(*c)))
    {
        Some(c) => Err(format!(
            "`{c}` may not appear in a path template outside a variable"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_checked_as_the_cloud_checks_them() {
        assert_eq!(
            match_variables("/users/{id}/posts/{rest=**}").unwrap(),
            ["id", "rest"]
        );
        assert_eq!(
            match_variables("/static/*/v1/**").unwrap(),
            Vec::<String>::new()
        );
        assert!(match_variables("users")
            .unwrap_err()
            .contains("starts with"));
        assert!(match_variables("/a/**/b")
            .unwrap_err()
            .contains("last segment"));
        assert!(match_variables("/{a}/{a}").unwrap_err().contains("twice"));
        assert!(match_variables("/{1a}")
            .unwrap_err()
            .contains("variable name"));
        assert!(match_variables("/a b").unwrap_err().contains("` `"));
        let six = "/{a}/{b}/{c}/{d}/{e}/{f}";
        assert!(match_variables(six).unwrap_err().contains("at most 5"));
        let vars = vec!["id".to_string(), "rest".to_string()];
        assert!(check_rewrite("/p/{rest}/u/{id}", &vars).is_ok());
        assert!(check_rewrite("/p/{other}", &vars)
            .unwrap_err()
            .contains("captures: id, rest"));
        assert!(check_rewrite("p/{id}", &vars).is_err());
    }
}
