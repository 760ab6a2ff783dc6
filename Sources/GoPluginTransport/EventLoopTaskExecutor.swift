package import NIOCore

/// Runs tasks on one event loop: the connection's, so that a call's task and the frames it reads
/// and writes share a thread.
///
/// A stream's reader is resumed from the loop and its writes are made on the loop. A task that
/// prefers this executor is resumed right there, in the same turn of the loop, and writes
/// without handing anything over; a task on the cooperative pool pays a thread switch each way,
/// tens of microseconds on a small machine, and a call used to make several.
///
/// NIO's event loops are serial executors but not task executors, which a task preference
/// needs: a job run as the loop's serial executor would be sent back to its preferred executor
/// at its next suspension point.
package final class EventLoopTaskExecutor: TaskExecutor {
  package let eventLoop: any EventLoop

  package init(_ eventLoop: any EventLoop) {
    self.eventLoop = eventLoop
  }

  package func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    // A job enqueued from the loop itself (a stream resuming its reader) joins this turn's
    // tasks without waking the selector.
    self.eventLoop.execute {
      job.runSynchronously(on: self.asUnownedTaskExecutor())
    }
  }
}
