package dev.cask.catalog.postgres;

import dev.cask.common.CaskException;

import java.net.URLDecoder;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Where a PostgreSQL catalog lives, as a user writes it ({@code --catalog}, {@code $CASK_CATALOG}),
 * split into what the JDBC driver needs (a URL without credentials, a user, a password) and what
 * may be shown ({@link #display()}: the URL with the user but never the password).
 *
 * <p>Accepted forms, as libpq and the JDBC driver write them:
 * <pre>
 *   postgresql://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]...]/DATABASE[?NAME=VALUE&amp;...]
 *   postgres://...                 (the same)
 *   jdbc:postgresql://...          (the same; user and password may be query parameters)
 * </pre>
 * USER, PASSWORD and DATABASE are percent-decoded. {@code user=} and {@code password=} in the
 * query are taken out of it like the ones before {@code @}; every other parameter goes to the
 * driver unchanged ({@code currentSchema=cask} keeps the catalog's tables in schema {@code cask},
 * {@code sslmode=require}...). A missing password is taken from {@code $PGPASSWORD}, a missing
 * user from {@code $PGUSER}, then the login name, as libpq does. HOST may be a bracketed IPv6
 * address. A DATABASE is required: a catalog in whatever database a login happens to default to
 * would be easy to lose.
 *
 * <p>The password never leaves this object except through {@link #password()} (for the driver):
 * {@link #display()}, {@link #toString()} and every error this class throws show the URL with
 * the password cut out. Immutable.
 */
public final class CatalogUrl {
    private static final Pattern FORM = Pattern.compile("(?i)(jdbc:postgresql|postgresql|postgres)://([^/?#]*)(/[^?#]*)?(\\?[^#]*)?");
    private static final Pattern HOST = Pattern.compile("(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?");
    private static final String USAGE = "postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?NAME=VALUE&...]";

    private final String hosts;
    private final String database;
    private final String user;
    private final String password;
    private final Map<String, String> parameters;

    private CatalogUrl(String hosts, String database, String user, String password, Map<String, String> parameters) {
        this.hosts = hosts;
        this.database = database;
        this.user = user;
        this.password = password;
        this.parameters = parameters;
    }

    /** Parses {@code url}, taking defaults from the process's environment. */
    public static CatalogUrl parse(String url) {
        return parse(url, System.getenv());
    }

    /** Parses {@code url}, taking a missing password from {@code PGPASSWORD} and a missing user from {@code PGUSER} in {@code env}. */
    public static CatalogUrl parse(String url, Map<String, String> env) {
        if (url == null || url.isBlank()) throw new CaskException.Usage("catalog URL is empty (expected " + USAGE + ")");
        Matcher m = FORM.matcher(url.trim());
        if (!m.matches()) {
            throw new CaskException.Usage("catalog URL '" + redact(url) + "': not a PostgreSQL URL (expected " + USAGE + ")");
        }
        String authority = m.group(2);
        String user = null;
        String password = null;
        int at = authority.lastIndexOf('@');
        if (at >= 0) {
            String userInfo = authority.substring(0, at);
            authority = authority.substring(at + 1);
            int colon = userInfo.indexOf(':');
            user = decode(url, colon < 0 ? userInfo : userInfo.substring(0, colon), "user");
            if (colon >= 0) password = decode(url, userInfo.substring(colon + 1), "password");
            if (user.isEmpty()) user = null;
        }
        if (authority.isEmpty()) throw new CaskException.Usage("catalog URL '" + redact(url) + "': no host (expected " + USAGE + ")");
        for (String host : authority.split(",", -1)) {
            Matcher h = HOST.matcher(host);
            if (!h.matches()) throw new CaskException.Usage("catalog URL '" + redact(url) + "': bad host '" + host + "'");
            if (h.group(2) != null) {
                int port = Integer.parseInt(h.group(2));
                if (port < 1 || port > 65535) {
                    throw new CaskException.Usage("catalog URL '" + redact(url) + "': port " + port + " is out of range (1-65535)");
                }
            }
        }
        String path = m.group(3) == null ? "" : m.group(3).substring(1);
        String database = decode(url, path, "database");
        if (database.isEmpty()) throw new CaskException.Usage("catalog URL '" + redact(url) + "': no database named (expected " + USAGE + ")");
        Map<String, String> parameters = new LinkedHashMap<>();
        if (m.group(4) != null && m.group(4).length() > 1) {
            for (String pair : m.group(4).substring(1).split("&")) {
                if (pair.isEmpty()) continue;
                int eq = pair.indexOf('=');
                String name = decode(url, eq < 0 ? pair : pair.substring(0, eq), "parameter name");
                String value = eq < 0 ? "" : decode(url, pair.substring(eq + 1), "parameter " + name);
                if (name.isEmpty()) throw new CaskException.Usage("catalog URL '" + redact(url) + "': a parameter has no name");
                switch (name) {
                    case "user" -> user = value;
                    case "password" -> password = value;
                    default -> parameters.put(name, value);
                }
            }
        }
        if (user == null || user.isEmpty()) user = env.get("PGUSER");
        if (user == null || user.isEmpty()) user = System.getProperty("user.name");
        if (password == null) password = env.get("PGPASSWORD");
        return new CatalogUrl(authority, database, user, password, java.util.Collections.unmodifiableMap(parameters));
    }

    private static String decode(String url, String s, String what) {
        try {
            return URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
        } catch (IllegalArgumentException e) {
            throw new CaskException.Usage("catalog URL '" + redact(url) + "': bad percent-encoding in the " + what);
        }
    }

    /**
     * {@code url} with any password cut out ({@code USER:***@}, {@code password=***}): what an
     * error about a URL that could not even be parsed may show.
     */
    public static String redact(String url) {
        if (url == null) return "null";
        String s = url.replaceAll("(?i)([?&]password=)[^&#]*", "$1***");
        int scheme = s.indexOf("://");
        if (scheme < 0) return s;
        int end = s.length();
        for (char c : new char[] {'/', '?', '#'}) {
            int i = s.indexOf(c, scheme + 3);
            if (i >= 0) end = Math.min(end, i);
        }
        int at = s.lastIndexOf('@', end - 1);
        if (at <= scheme) return s;
        int colon = s.indexOf(':', scheme + 3);
        if (colon < 0 || colon > at) return s;
        return s.substring(0, colon + 1) + "***" + s.substring(at);
    }

    /** The URL for the JDBC driver: hosts, database and the other parameters; no user, no password. */
    public String jdbcUrl() {
        StringBuilder b = new StringBuilder("jdbc:postgresql://").append(hosts).append('/').append(encode(database));
        appendParameters(b);
        return b.toString();
    }

    /** The URL to show in messages and logs: {@code postgresql://USER@HOSTS/DATABASE?...}, never the password. */
    public String display() {
        StringBuilder b = new StringBuilder("postgresql://");
        if (user != null) b.append(encode(user)).append('@');
        b.append(hosts).append('/').append(encode(database));
        appendParameters(b);
        return b.toString();
    }

    private void appendParameters(StringBuilder b) {
        char sep = '?';
        for (Map.Entry<String, String> p : parameters.entrySet()) {
            b.append(sep).append(encode(p.getKey())).append('=').append(encode(p.getValue()));
            sep = '&';
        }
    }

    private static String encode(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
    }

    public String hosts() {
        return hosts;
    }

    public String database() {
        return database;
    }

    public String user() {
        return user;
    }

    /** The password for the driver, or null; never print it. */
    public String password() {
        return password;
    }

    /** The driver parameters other than user and password, in the order given. */
    public Map<String, String> parameters() {
        return parameters;
    }

    /** The same place with one driver parameter set (e.g. {@code currentSchema}). */
    public CatalogUrl with(String name, String value) {
        Objects.requireNonNull(name, "name");
        if (name.equals("user") || name.equals("password")) throw new IllegalArgumentException("set " + name + " in the URL itself");
        Map<String, String> p = new LinkedHashMap<>(parameters);
        p.put(name, Objects.requireNonNull(value, "value"));
        return new CatalogUrl(hosts, database, user, password, java.util.Collections.unmodifiableMap(p));
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof CatalogUrl u && hosts.equals(u.hosts) && database.equals(u.database) && Objects.equals(user, u.user)
                && Objects.equals(password, u.password) && parameters.equals(u.parameters);
    }

    @Override
    public int hashCode() {
        return Objects.hash(hosts, database, user, parameters);
    }

    /** {@link #display()}: never the password. */
    @Override
    public String toString() {
        return display();
    }
}
