//! The built-in templates of the OpenVPN server configuration and of the
//! client profile (minijinja, rendered in the same sandbox as boot
//! templates). Administrators replace them with `vpn.server_template_file`
//! and `vpn.client_template_file`.

pub const SERVER: &str = r#"# OpenVPN server of the lab, written by `bootler vpn server-config`
# for {{ base_url }}. People sign in with their Bootler username and
# password; Bootler checks each sign-in and records the sessions.
port {{ port }}
proto {{ proto }}
dev tun
topology subnet
server {{ subnet_address }} {{ subnet_netmask }}
{% for network in networks -%}
push "route {{ network.address }} {{ network.netmask }}"
{% endfor -%}
keepalive 10 60
persist-key
persist-tun

ca {{ ca_file }}
cert {{ cert_file }}
key {{ key_file }}
dh none
tls-crypt {{ tls_crypt_key_file }}

# Username and password instead of client certificates.
verify-client-cert none
username-as-common-name
script-security 2
{% for name, value in environment -%}
setenv {{ name }} {{ value }}
{% endfor -%}
auth-user-pass-verify "{{ command }} vpn-auth" via-file
client-connect "{{ command }} vpn-connect"
client-disconnect "{{ command }} vpn-disconnect"
{% if management %}
# Bootler shows who is connected and disconnects sessions through this.
management {{ management.host }} {{ management.port }}{% if management.password_file %} {{ management.password_file }}{% endif %}
{% endif %}
verb 3
"#;

pub const CLIENT: &str = r#"# VPN profile of {{ username }} for the lab ({{ base_url }}).
# Connect with your Bootler username and password.
client
dev tun
proto {{ proto }}
remote {{ server }} {{ port }}
resolv-retry infinite
nobind
persist-key
persist-tun
remote-cert-tls server
auth-user-pass
auth-nocache
verb 3
<ca>
{{ ca }}</ca>
<tls-crypt>
{{ tls_crypt }}</tls-crypt>
"#;
