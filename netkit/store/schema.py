"""Schema and migrations. Version N is reached by running MIGRATIONS[:N] in order."""

MIGRATIONS: list[str] = [
    # 1: networks, IPAM pools and addresses, containers, endpoints, nodes, LANs
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, driver TEXT NOT NULL,
        scope TEXT NOT NULL, created TEXT NOT NULL, internal INTEGER NOT NULL,
        attachable INTEGER NOT NULL, ipv4 INTEGER NOT NULL, ipv6 INTEGER NOT NULL,
        options TEXT NOT NULL, labels TEXT NOT NULL);
    CREATE TABLE pools (
        network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL, subnet TEXT NOT NULL, ip_range TEXT, gateway TEXT,
        aux TEXT NOT NULL, hint TEXT, PRIMARY KEY (network_id, seq));
    -- addresses held in a network: fixed-width hex keys so text order = numeric order
    CREATE TABLE addresses (
        network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
        family INTEGER NOT NULL, addr TEXT NOT NULL, owner TEXT NOT NULL,
        PRIMARY KEY (network_id, family, addr)) WITHOUT ROWID;
    CREATE TABLE containers (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, hostname TEXT NOT NULL,
        created TEXT NOT NULL, network_mode TEXT NOT NULL, netns TEXT,
        command TEXT NOT NULL, pid INTEGER, pid_start INTEGER, state TEXT NOT NULL,
        exit_code INTEGER, auto_remove INTEGER NOT NULL, dns TEXT NOT NULL,
        options TEXT NOT NULL);
    CREATE TABLE endpoints (
        id TEXT PRIMARY KEY,
        network_id TEXT NOT NULL REFERENCES networks(id),
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        ifname TEXT NOT NULL, mac TEXT NOT NULL, ipv4 TEXT, ipv6 TEXT,
        aliases TEXT NOT NULL, links TEXT NOT NULL, static_ipv4 INTEGER NOT NULL,
        static_ipv6 INTEGER NOT NULL, host_ifname TEXT, seq INTEGER NOT NULL,
        UNIQUE (network_id, container_id));
    CREATE INDEX endpoints_by_container ON endpoints(container_id);
    CREATE TABLE lans (
        name TEXT PRIMARY KEY, subnet TEXT NOT NULL, gateway TEXT, netns TEXT NOT NULL);
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY, netns TEXT NOT NULL, lan TEXT REFERENCES lans(name),
        ip TEXT, gateway TEXT, dns TEXT NOT NULL, created TEXT NOT NULL);
    """,
    # 2: published ports (-p), one row per host binding
    """
    CREATE TABLE ports (
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        network_id TEXT NOT NULL, proto TEXT NOT NULL, host_ip TEXT NOT NULL,
        host_port INTEGER NOT NULL, container_ip TEXT NOT NULL, container_port INTEGER NOT NULL,
        PRIMARY KEY (proto, host_ip, host_port));
    CREATE INDEX ports_by_container ON ports(container_id);
    """,
    # 3: Docker's container lifecycle: start/finish times, restarts, the last error, and the
    # networks a container joins when it starts (kept while it is created or stopped)
    """
    ALTER TABLE containers ADD COLUMN started_at TEXT;
    ALTER TABLE containers ADD COLUMN finished_at TEXT;
    ALTER TABLE containers ADD COLUMN restart_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE containers ADD COLUMN error TEXT NOT NULL DEFAULT '';
    ALTER TABLE containers ADD COLUMN netconfig TEXT NOT NULL DEFAULT '[]';
    """,
    # 4: IPAM plugins (--ipam-driver, --ipam-opt): the plugin a network's addresses come from
    """
    ALTER TABLE networks ADD COLUMN ipam_driver TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE networks ADD COLUMN ipam_options TEXT NOT NULL DEFAULT '{}';
    """,
    # 5: Docker's events (`netkit events`): written by triggers in the transaction of the change
    # itself, so an event is recorded exactly when its action commits; the newest EVENTS_KEPT
    # are kept. netkit_now_ns() is the clock each Store connection registers.
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, time_nano INTEGER NOT NULL,
        type TEXT NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL, attributes TEXT NOT NULL);
    CREATE INDEX events_by_time ON events(time_nano);
    CREATE TRIGGER events_bounded AFTER INSERT ON events BEGIN
        DELETE FROM events WHERE seq <= NEW.seq - 10000; END;
    CREATE TRIGGER event_network_create AFTER INSERT ON networks BEGIN
        INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (netkit_now_ns(),
            'network', 'create', NEW.id, json_object('name', NEW.name, 'type', NEW.driver)); END;
    CREATE TRIGGER event_network_destroy AFTER DELETE ON networks BEGIN
        INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (netkit_now_ns(),
            'network', 'destroy', OLD.id, json_object('name', OLD.name, 'type', OLD.driver)); END;
    CREATE TRIGGER event_network_connect AFTER INSERT ON endpoints BEGIN
        INSERT INTO events (time_nano, type, action, actor, attributes)
        SELECT netkit_now_ns(), 'network', 'connect', n.id,
               json_object('container', NEW.container_id, 'name', n.name, 'type', n.driver)
        FROM networks n WHERE n.id = NEW.network_id; END;
    CREATE TRIGGER event_network_disconnect AFTER DELETE ON endpoints BEGIN
        INSERT INTO events (time_nano, type, action, actor, attributes)
        SELECT netkit_now_ns(), 'network', 'disconnect', n.id,
               json_object('container', OLD.container_id, 'name', n.name, 'type', n.driver)
        FROM networks n WHERE n.id = OLD.network_id; END;
    CREATE TRIGGER event_container_create AFTER INSERT ON containers BEGIN
        INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (netkit_now_ns(),
            'container', 'create', NEW.id, json_object('name', NEW.name)); END;
    CREATE TRIGGER event_container_destroy AFTER DELETE ON containers BEGIN
        INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (netkit_now_ns(),
            'container', 'destroy', OLD.id, json_object('name', OLD.name)); END;
    CREATE TRIGGER event_container_rename AFTER UPDATE OF name ON containers
        WHEN OLD.name != NEW.name BEGIN
        INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (netkit_now_ns(),
            'container', 'rename', NEW.id, json_object('name', NEW.name, 'oldName', '/' || OLD.name));
        END;
    CREATE TRIGGER event_container_start AFTER UPDATE OF state ON containers
        WHEN NEW.state = 'running' AND OLD.state != 'running' BEGIN
        INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (netkit_now_ns(),
            'container', 'start', NEW.id, json_object('name', NEW.name)); END;
    CREATE TRIGGER event_container_die AFTER UPDATE OF state ON containers
        WHEN OLD.state = 'running' AND NEW.state != 'running' BEGIN
        INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (netkit_now_ns(),
            'container', 'die', NEW.id,
            json_object('exitCode', CAST(coalesce(NEW.exit_code, 0) AS TEXT), 'name', NEW.name));
        END;
    """,
    # 6: a container without a command has no process: Docker's `created` (Container.status),
    # so it has no start and no die events
    """
    DROP TRIGGER event_container_start;
    DROP TRIGGER event_container_die;
    CREATE TRIGGER event_container_start AFTER UPDATE OF state ON containers
        WHEN NEW.state = 'running' AND OLD.state != 'running' AND NEW.command != '[]' BEGIN
        INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (netkit_now_ns(),
            'container', 'start', NEW.id, json_object('name', NEW.name)); END;
    CREATE TRIGGER event_container_die AFTER UPDATE OF state ON containers
        WHEN OLD.state = 'running' AND NEW.state != 'running' AND NEW.command != '[]' BEGIN
        INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (netkit_now_ns(),
            'container', 'die', NEW.id,
            json_object('exitCode', CAST(coalesce(NEW.exit_code, 0) AS TEXT), 'name', NEW.name));
        END;
    """,
]
