// Load generator for bench/many-clients.sh: N NBD connections, one per export, each doing light
// random 4 KiB I/O (reads and writes with a flush now and then), for a fixed time; prints latency
// percentiles. Run: java bench/ManyClients.java PORT PREFIX COUNT SECONDS OPS_PER_SEC_PER_CLIENT
// Stall mode (issue 10): java bench/ManyClients.java stall PORT EXPORT STALLERS SECONDS OPS_PER_SEC SIZE
//   one normal client doing random reads and writes of SIZE bytes (half each, unique data) at a
//   fixed rate while STALLERS other connections each announce a 32 MiB WRITE and send one byte;
//   prints one line "stallers N ops M p50 X p99 Y" (ms). A request that gets no reply in 20 s
//   counts as stuck and ends the run.
import java.io.*;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import java.util.concurrent.locks.LockSupport;

public class ManyClients {
    static final class Client implements AutoCloseable {
        final Socket s; final DataInputStream in; final DataOutputStream out; long size; long handle;
        Client(int port, String export) throws IOException {
            s = new Socket("127.0.0.1", port);
            in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
            out = new DataOutputStream(new BufferedOutputStream(s.getOutputStream()));
            in.readLong(); in.readLong(); in.readUnsignedShort();
            out.writeInt(3);
            byte[] name = export.getBytes(StandardCharsets.UTF_8);
            out.writeLong(0x49484156454F5054L); out.writeInt(7); out.writeInt(4 + name.length + 2);
            out.writeInt(name.length); out.write(name); out.writeShort(0); out.flush();
            while (true) {
                in.readLong(); in.readInt(); int type = in.readInt(); int len = in.readInt();
                byte[] d = in.readNBytes(len);
                if (type == 1) break;
                if (type == 3 && len >= 12 && d[1] == 0) size = ByteBuffer.wrap(d, 2, 8).getLong();
                if (type < 0) throw new IOException("refused: " + new String(d, StandardCharsets.UTF_8));
            }
        }
        void cmd(int type, long off, byte[] data, int len) throws IOException {
            out.writeInt(0x25609513); out.writeShort(0); out.writeShort(type); out.writeLong(++handle);
            out.writeLong(off); out.writeInt(len);
            if (type == 1) out.write(data, 0, len);
            out.flush();
            if (in.readInt() != 0x67446698) throw new IOException("bad magic");
            int err = in.readInt(); in.readLong();
            if (err != 0) throw new IOException("error " + err);
            if (type == 0) in.readNBytes(len);
        }
        public void close() throws IOException { s.close(); }
    }

    static void stall(String[] a) throws Exception {
        int port = Integer.parseInt(a[1]); String export = a[2]; int stallers = Integer.parseInt(a[3]);
        int seconds = Integer.parseInt(a[4]); double rate = Double.parseDouble(a[5]); int size = Integer.parseInt(a[6]);
        List<Client> stalled = new ArrayList<>();
        for (int i = 0; i < stallers; i++) {
            Client c = new Client(port, export);
            c.out.writeInt(0x25609513); c.out.writeShort(0); c.out.writeShort(1); c.out.writeLong(1);
            c.out.writeLong(0); c.out.writeInt(32 << 20); c.out.write(0); c.out.flush();
            stalled.add(c);
        }
        Client c = new Client(port, export);
        c.s.setSoTimeout(20_000);
        Random r = new Random(); byte[] buf = new byte[size];
        List<Long> lat = new ArrayList<>();
        long end = System.nanoTime() + seconds * 1_000_000_000L, next = System.nanoTime();
        String stuck = "";
        while (System.nanoTime() < end) {
            long sleep = next - System.nanoTime();
            if (sleep > 0) LockSupport.parkNanos(sleep);
            next += (long) (1e9 / rate);
            long off = (long) r.nextInt((int) (c.size / size)) * size;
            long t = System.nanoTime();
            try {
                if (r.nextBoolean()) c.cmd(0, off, null, size);
                else { r.nextBytes(buf); c.cmd(1, off, buf, size); }
            } catch (java.net.SocketTimeoutException e) { stuck = " STUCK: no reply in 20 s"; break; }
            lat.add(System.nanoTime() - t);
        }
        long[] l = lat.stream().mapToLong(Long::longValue).sorted().toArray();
        System.out.printf("stallers %d ops %d p50 %.2f p99 %.2f%s%n", stallers, l.length,
                l.length == 0 ? Double.NaN : l[l.length / 2] / 1e6, l.length == 0 ? Double.NaN : l[(int) (l.length * 0.99)] / 1e6, stuck);
        c.close();
        for (Client x : stalled) x.close();
    }

    public static void main(String[] a) throws Exception {
        if (a[0].equals("stall")) { stall(a); return; }
        int port = Integer.parseInt(a[0]); String prefix = a[1]; int n = Integer.parseInt(a[2]);
        int seconds = Integer.parseInt(a[3]); double rate = Double.parseDouble(a[4]);
        List<Client> clients = new ArrayList<>();
        long t0 = System.nanoTime();
        for (int i = 0; i < n; i++) clients.add(new Client(port, prefix + i));
        System.out.printf("opened %d exports in %.1f s%n", n, (System.nanoTime() - t0) / 1e9);
        ConcurrentLinkedQueue<Long> lat = new ConcurrentLinkedQueue<>();
        AtomicLong errors = new AtomicLong();
        long end = System.nanoTime() + seconds * 1_000_000_000L;
        try (var ex = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int i = 0; i < n; i++) {
                Client c = clients.get(i); int id = i;
                ex.submit(() -> {
                    Random r = new Random(id); byte[] buf = new byte[4096];
                    long next = System.nanoTime() + (long) (r.nextDouble() * 1e9 / rate);
                    while (System.nanoTime() < end) {
                        long sleep = next - System.nanoTime();
                        if (sleep > 0) LockSupport.parkNanos(sleep);
                        next += (long) (1e9 / rate);
                        long off = (long) r.nextInt((int) (c.size / 4096)) * 4096;
                        long s = System.nanoTime();
                        try {
                            int op = r.nextInt(10);
                            if (op < 6) c.cmd(0, off, null, 4096);
                            else { r.nextBytes(buf); c.cmd(1, off, buf, 4096); if (op == 9) c.cmd(3, 0, null, 0); }
                            lat.add(System.nanoTime() - s);
                        } catch (IOException e) { errors.incrementAndGet(); return null; }
                    }
                    return null;
                });
            }
        }
        long[] l = lat.stream().mapToLong(Long::longValue).sorted().toArray();
        System.out.printf("ops %d (%.0f/s) errors %d%n", l.length, l.length / (double) seconds, errors.get());
        if (l.length > 0) {
            System.out.printf("latency ms: p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f%n",
                l[l.length / 2] / 1e6, l[(int) (l.length * 0.9)] / 1e6, l[(int) (l.length * 0.99)] / 1e6,
                l[(int) (l.length * 0.999)] / 1e6, l[l.length - 1] / 1e6);
        }
        for (Client c : clients) c.close();
        if (errors.get() > 0) System.exit(1);
    }
}
